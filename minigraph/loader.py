"""Read a model file (YAML or JSON) into plain Python data, remembering where each value was.

YAML is composed with PyYAML's *safe* machinery into a node tree; we build the Python values
ourselves so that every key and value keeps its ``line:column``, duplicate keys are caught, and
any tag outside plain YAML (``!!python/object``, custom ``!tags``) is refused: a model file is
only data.  JSON is first checked by the ``json`` module (exact syntax errors), then composed
the same way for positions, with scalars read by JSON's rules.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import Location, ModelError

_PLAIN_TAGS = {
    "tag:yaml.org,2002:" + t
    for t in ("str", "int", "float", "bool", "null", "seq", "map")
}


@dataclass
class Document:
    """A model file's data and the position of every key and value in it.

    ``positions`` maps a path such as ``("nodes", 2, "op")`` to ``(line, column)``.
    """

    data: object
    file: str
    positions: dict = field(default_factory=dict)

    def at(self, *path) -> Location:
        """The location of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path and path not in self.positions:
            path = path[:-1]
        line, column = self.positions.get(path, (0, 0))
        return Location(self.file, line, column)

    def key_at(self, *path) -> Location:
        """The location of the *key* of ``path`` (falls back to the value)."""
        key = ("key",) + tuple(path)
        if key in self.positions:
            return Location(self.file, *self.positions[key])
        return self.at(*path)


def _mark(node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    """Turn a composed YAML node tree into Python values plus positions."""

    def __init__(self, file: str, json_scalars: bool):
        self.file = file
        self.json_scalars = json_scalars
        self.positions: dict = {}
        self.constructor = yaml.SafeLoader("")  # used only to construct plain scalars

    def error(self, node, message):
        return ModelError(message, Location(self.file, *_mark(node)))

    def build(self, node, path=()):
        self.positions[path] = _mark(node)
        if node.tag not in _PLAIN_TAGS:
            raise self.error(node, f"tag '{node.tag}' is not allowed: a model file holds only "
                                   "plain data (maps, lists, strings, numbers, booleans, null)")
        if isinstance(node, yaml.MappingNode):
            out = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.error(key_node, "a key must be a plain name")
                key = self.scalar(key_node)
                if key in out:
                    first = self.positions[("key",) + path + (key,)]
                    raise self.error(key_node, f"duplicate key '{key}' (first defined at line "
                                               f"{first[0]})")
                self.positions[("key",) + path + (key,)] = _mark(key_node)
                out[key] = self.build(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def scalar(self, node):
        if self.json_scalars:
            if node.style in ('"', "'"):
                return node.value
            return json.loads(node.value)
        if node.tag not in _PLAIN_TAGS:
            raise self.error(node, f"tag '{node.tag}' is not allowed")
        value = self.constructor.construct_object(node, deep=True)
        if isinstance(value, (bytes, set)) or type(value).__module__ == "datetime":
            raise self.error(node, f"value of type {type(value).__name__} is not allowed")
        return value


def _syntax_location(file, exc) -> Location:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is None:
        return Location(file, 1, 1)
    return Location(file, mark.line + 1, mark.column + 1)


def parse_text(text: str, file: str = "<string>", fmt: str | None = None) -> Document:
    """Parse model text; ``fmt`` is ``"yaml"`` or ``"json"`` (default: by the file's suffix)."""
    if fmt is None:
        fmt = "json" if str(file).lower().endswith(".json") else "yaml"
    if fmt == "json":
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"JSON syntax error: {exc.msg}",
                             Location(file, exc.lineno, exc.colno)) from None
        text = text.replace("\t", " ")  # JSON allows tabs as blanks, YAML does not; same columns
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ModelError(f"{fmt.upper()} syntax error: {problem}",
                         _syntax_location(file, exc)) from None
    if root is None:
        raise ModelError("the model file is empty", Location(file, 1, 1))
    builder = _Builder(file, json_scalars=(fmt == "json"))
    data = builder.build(root)
    if not isinstance(data, dict):
        raise ModelError("a model file must be a mapping of keys (minigraph, name, inputs, ...)",
                         Location(file, *_mark(root)))
    return Document(data, file, builder.positions)


def read_file(path) -> Document:
    """Read and parse a model file from disk."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"no such model file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read model file {path}: {exc}") from None
    return parse_text(text, str(path))


def from_dict(data: dict, file: str = "<dict>") -> Document:
    """Wrap an in-memory dict (Python API) as a document without positions."""
    return Document(data, file, {})
