"""What loading one split (``data.train`` or ``data.test``) needs, shared by every source kind.

A :class:`SplitContext` knows the model's inputs, the folders to read from and how to find a
key's line in the model file, so every source kind raises errors located at the key at fault.
It also checks a source's options -- the kind's own and :data:`SPLIT_OPTIONS`, which every
source accepts -- with :func:`minigraph.options.check_options`.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DataError, Location, ModelError, did_you_mean, known
from ..limits import short
from ..options import Option, OptionError, check_options
from . import kinds

#: Keys every source accepts.
SPLIT_OPTIONS = {
    "limit": Option("int", None, "keep only the first N examples", convert=kinds.count),
    "test_fraction": Option("float", None, "(train only) split off this fraction as the test set",
                            convert=kinds.real),
    "split_seed": Option("int", 0, "seed of the test_fraction split", convert=kinds.as_written),
}
#: ``split_seed``'s value, checked only where it applies (with ``test_fraction``).
SPLIT_SEED = Option("int", 0, "seed of the test_fraction split", convert=kinds.seed)

NAMES = Option("any", None, "the model inputs to fill, like [x, t]", convert=kinds.as_written)


class SplitContext:
    """The model's inputs, folders, and how to locate keys, for one split of the data."""

    def __init__(self, split, inputs, base_dir, data_dir, at):
        self.split = split
        self.inputs = inputs
        self.base_dir = Path(base_dir)
        self.data_dir = data_dir
        self.at = at
        self.kind = None          # the source kind, once known
        self.options = {}         # the source's checked options, once checked

    def loc(self, *keys) -> Location | None:
        """The location of ``data.<split>.<keys...>``, or of its nearest known parent."""
        if self.at is None:
            return None
        path = ((self.split,) if self.split else ()) + tuple(keys)
        while True:
            location = self.at(*path)
            if location is not None or not path:
                return location
            path = path[:-1]

    def model_error(self, message, *keys) -> ModelError:
        return ModelError(message, self.loc(*keys))

    def data_error(self, message, *keys) -> DataError:
        return DataError(message, self.loc(*keys))

    def where(self) -> str:
        return f"data.{self.split}" if self.split else "data"

    def check(self, given, declared, what, *keys) -> dict:
        """``check_options`` on ``given``, its errors worded as data's and located at the key."""
        try:
            return check_options(declared, given, "key", what)
        except OptionError as exc:
            if exc.reason is not None:
                raise self.model_error(f"{self.where()}.{exc.key} {exc.reason}",
                                       *keys, exc.key) from None
            if exc.key in declared:
                raise self.model_error(exc.message, *keys, exc.key) from None
            key = next(k for k in given if not isinstance(k, str) or k not in declared)
            raise self.model_error(
                f"unknown key {short(key)} in {what}{did_you_mean(key, declared)}; "
                f"valid keys: {known(declared, limit=30)}", *keys, key) from None

    def check_source(self, source, declared, what=None) -> dict:
        """Check a source's keys against its kind's ``declared`` options and SPLIT_OPTIONS."""
        self.options = self.check(source, {**declared, **SPLIT_OPTIONS}, what or self.where())
        return self.options

    def value(self, source, key, option):
        """``source[key]`` checked against ``option`` (or its default), for an option whose
        value matters only where it applies (``delimiter`` of a CSV file, ``split_seed``)."""
        if key not in source:
            return option.default
        return self.check({key: source[key]}, {key: option}, self.where())[key]

    def input_name(self, name, *keys) -> str:
        """Check that ``name`` is one of the model's inputs."""
        if not isinstance(name, str) or name not in self.inputs:
            raise self.model_error(
                f"{self.where()}: {short(name)} is not an input of the model"
                f"{did_you_mean(name, self.inputs)}; inputs: {known(self.inputs)}", *keys)
        return name

    def names(self, source) -> list:
        """The inputs a generator, file or dataset fills: ``names``, or the first two inputs."""
        if "names" in source:
            names = source["names"]
            if isinstance(names, str):
                names = [names]
            if not isinstance(names, list) or not 1 <= len(names) <= 2:
                raise self.model_error(f"{self.where()}.names must be a list of one or two "
                                       f"input names, like [x, t], not {short(names)}", "names")
            for name in names:
                self.input_name(name, "names")
            if len(set(names)) != len(names):
                raise self.model_error(f"{self.where()}.names repeats {short(names[0])}",
                                       "names")
            return list(names)
        if not self.inputs:
            raise self.model_error(f"{self.where()}: the model has no inputs to put the data in")
        return list(self.inputs)[:2]

    def rank(self, name):
        """The rank of input ``name``'s declared shape, or None."""
        shape = self.inputs.get(name, {}).get("shape")
        return None if shape is None else len(shape)

    def fit_rank(self, name, array):
        """Turn an ``(n, 1)`` column into ``(n,)`` or back when the declared rank asks for it."""
        shape = self.inputs.get(name, {}).get("shape")
        if shape is None:
            return array
        if array.ndim == 2 and array.shape[1] == 1 and len(shape) == 1:
            return array[:, 0]
        if array.ndim == 1 and len(shape) == 2 and shape[1] == 1:
            return array[:, None]
        return array

    def keys_for(self, name):
        """The key path that best locates input ``name``'s data in the source."""
        return ("inline", name) if self.kind == "inline" else (self.kind,)


def show_path(path) -> str:
    """A path for a one-line message: as it is, or quoted when it holds odd characters."""
    text = str(path)
    return text if text.isprintable() and len(text) <= 300 else short(text, 300)
