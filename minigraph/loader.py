"""Read a model file (YAML or JSON) into plain Python data, remembering where each value was.

YAML is composed with PyYAML's *safe* machinery into a node tree; we build the Python values
ourselves so that every key and value keeps its ``line:column``, duplicate keys are caught, and
any tag outside plain YAML (``!!python/object``, custom ``!tags``) is refused: a model file is
only data.  JSON is first checked by the ``json`` module (exact syntax errors), then composed
the same way for positions, with scalars read by JSON's rules.

A hostile file ends in one located message, quickly, allocating nothing large: the file's size,
its nesting, its aliases (and what they expand to), and the size of every string and number
are bounded (:mod:`minigraph.limits`) before any Python value is built.
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import limits
from .errors import Location, ModelError
from .limits import short

_PLAIN_TAGS = {
    "tag:yaml.org,2002:" + t
    for t in ("str", "int", "float", "bool", "null", "seq", "map")
}
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_STR_TAG = "tag:yaml.org,2002:str"
_BOM = "\ufeff"


@dataclass
class Document:
    """A model file's data and the position of every key and value in it.

    ``positions`` maps a path such as ``("nodes", 2, "op")`` to ``(line, column)``.
    """

    data: object
    file: str
    positions: dict = field(default_factory=dict)
    text: str | None = field(default=None, repr=False)  # the text as read, for identity saves
    fmt: str | None = None  # "yaml" or "json"

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


# ==== composing with bounds =======================================================================

class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe composer, refusing deep nesting and too many aliases as it goes.

    Nesting is counted while composing (PyYAML composes recursively: a file nested a thousand
    deep would otherwise end in RecursionError); aliases are counted here and their expansion
    is measured before any value is built (:func:`_measure`).
    """

    def __init__(self, stream, file):
        super().__init__(stream)
        self.file = file
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > limits.MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise ModelError(f"more than {limits.MAX_ALIASES} YAML aliases (*name): a model "
                                 "file needs few", Location(self.file, mark.line + 1,
                                                            mark.column + 1))
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > limits.MAX_NESTING:
            mark = self.peek_event().start_mark
            raise ModelError(f"maps and lists are nested more than {limits.MAX_NESTING} deep",
                             Location(self.file, mark.line + 1, mark.column + 1))
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _measure(root, file) -> None:
    """Refuse recursive aliases, and trees that aliases expand beyond the limits.

    Each node's expanded size (values) and height are computed once (memoised by node), without
    recursion, so a "billion laughs" file is refused in microseconds instead of being built.
    """
    size: dict = {}
    height: dict = {}
    active: set = set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            height[key] = 1 + max((height[id(c)] for c in children), default=0)
            if size[key] > limits.MAX_VALUES:
                raise ModelError(f"this value expands to more than {limits.MAX_VALUES:,} values "
                                 "(through YAML aliases): a model file must stay small",
                                 Location(file, *_mark(node)))
            if height[key] > limits.MAX_NESTING:
                raise ModelError(f"maps and lists are nested more than {limits.MAX_NESTING} deep "
                                 "(through YAML aliases)", Location(file, *_mark(node)))
            continue
        if key in size:
            continue
        if key in active:
            raise ModelError("a YAML alias refers to a value that contains it (a recursive "
                             "alias): a model file must be a tree", Location(file, *_mark(node)))
        active.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in active:
                raise ModelError("a YAML alias refers to a value that contains it (a recursive "
                                 "alias): a model file must be a tree",
                                 Location(file, *_mark(child)))
            if id(child) not in size:
                stack.append((child, False))


def _children(node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


# ==== building values =============================================================================

_DIGITS = re.compile(r"[0-9a-fA-F]")
# More opening brackets in a row than the nesting limit (even inside a quoted string: no model
# file needs that many in a row).
_OPENINGS = re.compile(r"[\[{](?:[ \t]*[\[{]){%d}" % limits.MAX_NESTING)


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
            raise self.error(node, f"tag {short(node.tag)} is not allowed: a model file holds "
                                   "only plain data (maps, lists, strings, numbers, booleans, "
                                   "null)")
        if isinstance(node, yaml.MappingNode):
            out = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.error(key_node, "a key must be a plain name")
                key = self.scalar(key_node, path)
                if not isinstance(key, str):
                    raise self.error(key_node, f"a key must be a name (text), got "
                                               f"{short(key)}; quote it if it is meant as text")
                if key in out:
                    first = self.positions[("key",) + path + (key,)]
                    raise self.error(key_node, f"duplicate key {short(key)} (first defined at "
                                               f"line {first[0]})")
                self.positions[("key",) + path + (key,)] = _mark(key_node)
                out[key] = self.build(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def scalar(self, node, path=()):
        text = node.value
        longest = limits.MAX_DESCRIPTION if path[:1] == ("description",) else limits.MAX_STRING
        if len(text) > longest:
            raise self.error(node, f"this value has {len(text):,} characters; at most "
                                   f"{longest:,} are allowed here")
        quoted = node.style in ('"', "'", "|", ">")
        if self.json_scalars:
            if quoted:
                value = text
            else:
                self._check_digits(node, text, not any(c in text for c in ".eE"))
                try:
                    value = json.loads(text)
                except ValueError:
                    raise self.error(node, f"{short(text)} is not a JSON value") from None
        else:
            if node.tag not in _PLAIN_TAGS:
                raise self.error(node, f"tag {short(node.tag)} is not allowed")
            self._check_digits(node, text, node.tag == _INT_TAG)
            try:
                value = self.constructor.construct_object(node, deep=True)
            except (ValueError, KeyError, TypeError, OverflowError, yaml.YAMLError):
                kind = node.tag.rsplit(":", 1)[-1]
                raise self.error(node, f"{short(text)} is not a valid {kind}") from None
            if isinstance(value, (bytes, set)) or type(value).__module__ == "datetime":
                raise self.error(node, f"value of type {type(value).__name__} is not allowed")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise self.error(node, "this text holds a lone surrogate (an invalid \\ud800-"
                                       "\\udfff escape): it is not valid Unicode") from None
        elif isinstance(value, int) and not isinstance(value, bool) and \
                value.bit_length() > 4 * limits.MAX_INT_DIGITS:
            raise self.error(node, f"the integer {short(value)} is too large")
        elif isinstance(value, float) and math.isinf(value) and not _spells_infinity(text):
            raise self.error(node, f"the number {short(text)} is too large for a float")
        return value

    def _check_digits(self, node, text, is_int):
        """Refuse integers with more digits than any model needs, before Python parses them
        (Python refuses int <-> str beyond 4,300 digits; PyYAML would raise inside)."""
        if not is_int:
            return
        digits = len(_DIGITS.findall(text))
        if digits > limits.MAX_INT_DIGITS:
            raise self.error(node, f"this integer has {digits:,} digits; at most "
                                   f"{limits.MAX_INT_DIGITS} are allowed")


def _spells_infinity(text: str) -> bool:
    return "inf" in text.lower()


# ==== syntax errors ===============================================================================

def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character ``index`` of ``text``."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _syntax_location(file, exc, text) -> Location:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return Location(file, mark.line + 1, mark.column + 1)
    position = getattr(exc, "position", None)  # ReaderError: a character index, no mark
    if isinstance(position, int) and 0 <= position <= len(text):
        return Location(file, *_line_col(text, position))
    return Location(file, 1, 1)


def _syntax_problem(exc) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character
        point = ord(char) if isinstance(char, str) else int(char)
        name = "a NUL byte" if point == 0 else f"the control character U+{point:04X}"
        return f"{name} is not allowed in a model file"
    problem = str(getattr(exc, "problem", None) or exc)
    return problem if len(problem) <= 200 else problem[:197] + "..."


def parse_text(text: str, file: str = "<string>", fmt: str | None = None) -> Document:
    """Parse model text; ``fmt`` is ``"yaml"`` or ``"json"`` (default: by the file's suffix)."""
    if fmt is None:
        fmt = "json" if str(file).lower().endswith(".json") else "yaml"
    source = text
    if text.startswith(_BOM):
        text = text[1:]  # a byte order mark: accepted (editors do not show it as a column)
    if fmt == "json":
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"JSON syntax error: {exc.msg[:200]}",
                             Location(file, exc.lineno, exc.colno)) from None
        except (RecursionError, ValueError):
            pass  # too deep, or a number too long: the YAML pass below locates it
        text = text.replace("\t", " ")  # JSON allows tabs as blanks, YAML does not; same columns
    deep = _OPENINGS.search(text)
    if deep:  # PyYAML's scanner looks ahead over such a run slowly; refuse it up front
        raise ModelError(f"maps and lists are nested more than {limits.MAX_NESTING} deep",
                         Location(file, *_line_col(text, deep.start())))
    loader = None
    try:
        loader = _BoundedLoader(text, file)  # the reader refuses NUL and control bytes here
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        raise ModelError(f"{fmt.upper()} syntax error: {_syntax_problem(exc)}",
                         _syntax_location(file, exc, text)) from None
    except RecursionError:  # defensive: nesting is bounded above
        raise ModelError(f"maps and lists are nested too deep (limit {limits.MAX_NESTING})",
                         Location(file, 1, 1)) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise ModelError("the model file is empty", Location(file, 1, 1))
    _measure(root, file)
    builder = _Builder(file, json_scalars=(fmt == "json"))
    data = builder.build(root)
    if not isinstance(data, dict):
        raise ModelError("a model file must be a mapping of keys (minigraph, name, inputs, ...)",
                         Location(file, *_mark(root)))
    return Document(data, file, builder.positions, source, fmt)


# ==== files =======================================================================================

def read_file(path) -> Document:
    """Read and parse a model file from disk (a regular file of bounded size, UTF-8)."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ModelError(f"no such model file: {path}") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read model file {path}: {exc}") from None
    if not stat.S_ISREG(info.st_mode):
        what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ModelError(f"cannot read model file {path}: it is {what} (a model file is a "
                         ".yaml or .json file)")
    if info.st_size > limits.MAX_MODEL_FILE_BYTES:
        raise ModelError(f"model file {path} is {info.st_size:,} bytes; at most "
                         f"{limits.MAX_MODEL_FILE_BYTES:,} are allowed")
    try:
        with open(path, "rb") as f:  # read(n) allocates n bytes: ask for what stat said
            raw = f.read(info.st_size + 1)
            if len(raw) > info.st_size:  # it grew meanwhile: read on, still bounded
                raw += f.read(limits.MAX_MODEL_FILE_BYTES + 1 - len(raw))
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    if len(raw) > limits.MAX_MODEL_FILE_BYTES:
        raise ModelError(f"model file {path} is larger than {limits.MAX_MODEL_FILE_BYTES:,} "
                         "bytes")
    return parse_text(decode(raw, str(path)), str(path))


def decode(raw: bytes, file: str) -> str:
    """UTF-8 text of a model file (a leading byte order mark is fine); a bad byte is located."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = raw[:exc.start].decode("utf-8", errors="replace")
        line, column = _line_col(good, len(good))
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            problem = "is UTF-16; save it as UTF-8"
        else:
            problem = f"is not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot start or continue " \
                      "a character (save the file as UTF-8)"
        raise ModelError(f"the model file {problem}", Location(file, line, column)) from None


def from_dict(data: dict, file: str = "<dict>") -> Document:
    """Wrap an in-memory dict (Python API) as a document without positions."""
    return Document(data, file, {})
