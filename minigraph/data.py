"""Training and test data for minigraph models: the ``data`` section of a model file.

A model file names where its data comes from; this module turns that description into NumPy
arrays keyed by the model's input names, and cuts them into mini-batches during training::

    data:
      train: {inline: {x: [[0,0],[0,1],[1,0],[1,1]], t: [[0],[1],[1],[0]]}}
      test:  {dataset: mnist, split: test, scale: 255, flatten: true, one_hot: false}

``train`` is required when there is a ``data`` section; ``test`` is optional.  Each of them is
a *source*: a mapping with exactly one of the keys ``inline``, ``file``, ``generator`` or
``dataset``, plus that kind's options.

Keys every source accepts
-------------------------
``limit: N``            keep only the first N examples.
``test_fraction: F``    (train only, 0 < F < 1) split this source into train and test: a random
                        fraction F of the examples becomes the test set.  Cannot be combined
                        with a ``test`` source.
``split_seed: S``       seed of that random split (default 0).  Each part keeps file order.

Sources
-------
``inline: {NAME: nested list, ...}``
    Arrays written in the file, keyed by the model's input names.  Nothing is reshaped: what
    you write is what the model gets.

``file: PATH``  (relative to the model file's folder)
    * CSV (any other suffix; ``.tsv`` means tab-separated): numbers only, except an optional
      header row (recognised because it is not all numbers); blank lines and lines starting
      with ``#`` are skipped.  ``delimiter`` (default ``","``).
    * ``.npy``: one array, cut into inputs like a CSV table.
    * ``.npz``: ``keys: {x: X, t: y}`` maps input name -> array name in the archive
      (default: every model input whose name is an array in the archive).

    ``columns: {x: [0, 1], t: [2]}`` maps input names to column indices (a list gives an
    ``(n, k)`` array, a single index an ``(n,)`` vector; with a header row, column names may
    be used instead of indices).  Without ``columns`` the table goes to ``names`` (default: the
    first two model inputs): all columns but the last to the first name, the last column to the
    second; with a single name, the whole table goes to it.

``generator: NAME`` (synthetic data; see GENERATORS below for every option and its default)
    ``xor``, ``and``, ``or``, ``nand``   the four rows of a truth table;
                                         ``targets: binary`` (0/1) or ``sign`` (-1/+1).
    ``circles``   two noisy concentric circles (like scikit-learn's make_circles).
    ``moons``     two interleaving half circles (like scikit-learn's make_moons).
    ``spiral``    a spiral of ``classes`` arms, ``n`` points per arm (CS231n's toy data).
    ``linear``    ``y = w*x + b + N(0, noise)``, x uniform in [low, high]; a list ``w`` gives
                  one feature per weight (``y = x . w + b``).
    ``polynomial`` ``y = c0 + c1*x + c2*x^2 + ... + N(0, noise)`` with ``coefficients``.

    A generator makes features and targets; ``names: [x, t]`` says which model inputs get them
    (default: the first two inputs in the model's ``inputs`` order; a single name keeps only
    the features).  Targets are ``(n, 1)`` for two-class and regression sets; spiral gives
    ``(n,)`` int64 class indices, or ``(n, classes)`` with ``one_hot: true``.  Every random
    generator takes ``seed`` (default 0), so the same file always gives the same data.

``dataset: mnist``
    ``split``     ``train`` (60,000 images) or ``test`` (10,000); default: the section's name.
    ``scale``     divide pixel values by this number; ``true`` = 255, ``false`` = keep 0..255.
                  Default 255 (pixels in [0, 1]).
    ``flatten``   ``true``: images ``(n, 784)``; ``false``: ``(n, 1, 28, 28)`` (NCHW).
                  Default: follow the rank of the image input's declared shape
                  (rank 2 -> flat, rank 3 -> ``(n, 28, 28)``, otherwise NCHW).
    ``one_hot``   ``false``: labels are class indices ``(n,)``; ``true``: ``(n, 10)`` rows of
                  0/1.  Default: one-hot exactly when the label input's declared rank is 2.
    ``names``     ``[images, labels]``, default the first two model inputs; a single name keeps
                  only the images (an autoencoder needs no labels).
    ``limit``     the first N examples (quick experiments and tests).

    The four standard IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each plain or ``.gz``) are looked
    for in: the ``data_dir`` argument (the CLI's ``--data-dir``), then the environment variable
    ``MINIGRAPH_DATA``, then ``~/.minigraph/data/mnist``.  Each of these folders may also hold
    the files in an ``mnist/`` subfolder.

After loading, every array is cast to its input's declared ``dtype`` (default ``float32``) and
checked against the input's declared ``shape``.  For generated data, ``.npz`` arrays and the
default columns of a table (not for inline data or explicit ``columns``), an ``(n, 1)`` column
and an ``(n,)`` vector are converted into each other to fit the declared rank.
"""
from __future__ import annotations

import array as pyarray
import contextlib
import csv
import functools
import gzip
import io
import math
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import limits
from .errors import DataError, Location, ModelError, did_you_mean, known
from .limits import short
from .shapes import BindError, bind_dims

__all__ = [
    "DataSplits",
    "load_data",
    "iterate_batches",
    "num_examples",
    "mnist_files",
    "GENERATORS",
    "MNIST_FILES",
    "DEFAULT_MNIST_DIR",
]

SOURCE_KINDS = ("inline", "file", "generator", "dataset")
SPLIT_KEYS = ("limit", "test_fraction", "split_seed")   # accepted by every source

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DEFAULT_MNIST_DIR = "~/.minigraph/data/mnist"
IDX_IMAGES_MAGIC = 2051   # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049   # 0x00000801: unsigned bytes, 1 dimension


@dataclass
class DataSplits:
    """The arrays of a model's data, keyed by input name; ``None`` where a split is absent."""

    train: dict[str, np.ndarray] | None
    test: dict[str, np.ndarray] | None


# ----------------------------------------------------------------------------------------------
# Option checkers.  Each takes the value written in the file and returns it converted, or
# raises ValueError with a sentence saying what was expected.
# ----------------------------------------------------------------------------------------------

def _real(value):
    """A finite number.  (PyYAML reads ``1e-3`` as a string, so numeric strings are accepted.)"""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {short(value)}")
    if isinstance(value, str):
        try:
            number = float(value) if len(value) <= 100 else None
        except ValueError:
            number = None
        if number is None:
            raise ValueError(f"must be a number, not {short(value)}")
        value = number
    if isinstance(value, int):
        try:
            value = float(value)
        except OverflowError:
            raise ValueError(f"must be a finite number, not {short(value)}") from None
    if not isinstance(value, float) or not math.isfinite(value):
        raise ValueError(f"must be a finite number, not {short(value)}")
    return value


def _moderate(value):
    """A finite number of at most ``limits.MAX_OPTION`` in size (a generator's option)."""
    value = _real(value)
    if abs(value) > limits.MAX_OPTION:
        raise ValueError(f"must be between {-limits.MAX_OPTION:g} and {limits.MAX_OPTION:g}, "
                         f"not {value:g}")
    return value


def _integer(value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number, not {short(value)}")
    return value


def _count(value):
    """A positive whole number (a number of examples, classes, ...)."""
    value = _integer(value)
    if value < 1:
        raise ValueError(f"must be at least 1, not {short(value)}")
    if value > limits.MAX_EXAMPLES:
        raise ValueError(f"must be at most {limits.MAX_EXAMPLES:,}, not {short(value)}")
    return value


def _seed(value):
    value = _integer(value)
    if not 0 <= value <= limits.MAX_SEED:
        raise ValueError(f"must be a whole number from 0 to 2**64 - 1, not {short(value)}")
    return value


def _nonnegative(value):
    value = _moderate(value)
    if value < 0:
        raise ValueError(f"must be >= 0, not {value}")
    return value


def _flag(value):
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {short(value)}")
    return value


def _factor(value):
    value = _real(value)
    if not 0 <= value < 1:
        raise ValueError(f"must be >= 0 and < 1, not {value}")
    return value


def _classes(value):
    value = _count(value)
    if not 2 <= value <= limits.MAX_CLASSES:
        raise ValueError(f"must be from 2 to {limits.MAX_CLASSES}, not {short(value)}")
    return value


def _reals(value):
    """A non-empty list of at most ``limits.MAX_TERMS`` moderate numbers."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"must be a non-empty list of numbers, not {short(value)}")
    if len(value) > limits.MAX_TERMS:
        raise ValueError(f"has {len(value):,} numbers, more than the limit of "
                         f"{limits.MAX_TERMS:,}")
    return [_moderate(v) for v in value]


def _real_or_reals(value):
    return _reals(value) if isinstance(value, (list, tuple)) else _moderate(value)


def _choice(*choices):
    def check(value):
        if not isinstance(value, str) or value not in choices:
            hint = did_you_mean(value, choices) if isinstance(value, str) else ""
            raise ValueError(f"must be one of {', '.join(choices)}, not {short(value)}{hint}")
        return value
    return check


# ----------------------------------------------------------------------------------------------
# Generators.  Each returns (features, targets) as NumPy arrays.
# ----------------------------------------------------------------------------------------------

_TRUTH_TABLES = {
    "xor": [0, 1, 1, 0],
    "and": [0, 0, 0, 1],
    "or": [0, 1, 1, 1],
    "nand": [1, 1, 1, 0],
}


def _truth_table(gate, *, targets):
    """The four input pairs (0,0), (0,1), (1,0), (1,1) and the gate's output for each."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    t = np.array(_TRUTH_TABLES[gate], dtype=np.float64).reshape(4, 1)
    if targets == "sign":
        t = 2 * t - 1          # 0 -> -1, 1 -> +1
    return x, t


def _shuffle_and_noise(rng, x, y, noise, shuffle):
    """Shuffle the examples, then add Gaussian noise to every coordinate (scikit-learn's order)."""
    if shuffle:
        order = rng.permutation(len(x))
        x, y = x[order], y[order]
    x = x + rng.normal(scale=noise, size=x.shape)
    return x, y


def _circles(*, n, noise, factor, seed, shuffle):
    """A big circle (radius 1, label 0) around a small one (radius ``factor``, label 1)."""
    rng = np.random.default_rng(seed)
    n_outer = n // 2
    n_inner = n - n_outer
    angle_out = np.linspace(0, 2 * np.pi, n_outer, endpoint=False)
    angle_in = np.linspace(0, 2 * np.pi, n_inner, endpoint=False)
    x = np.concatenate([
        np.stack([np.cos(angle_out), np.sin(angle_out)], axis=1),
        factor * np.stack([np.cos(angle_in), np.sin(angle_in)], axis=1),
    ])
    y = np.concatenate([np.zeros(n_outer), np.ones(n_inner)]).reshape(-1, 1)
    return _shuffle_and_noise(rng, x, y, noise, shuffle)


def _moons(*, n, noise, seed, shuffle):
    """Two half circles: the upper one (label 0) and a lower one shifted right (label 1)."""
    rng = np.random.default_rng(seed)
    n_outer = n // 2
    n_inner = n - n_outer
    angle_out = np.linspace(0, np.pi, n_outer)
    angle_in = np.linspace(0, np.pi, n_inner)
    x = np.concatenate([
        np.stack([np.cos(angle_out), np.sin(angle_out)], axis=1),
        np.stack([1 - np.cos(angle_in), 1 - np.sin(angle_in) - 0.5], axis=1),
    ])
    y = np.concatenate([np.zeros(n_outer), np.ones(n_inner)]).reshape(-1, 1)
    return _shuffle_and_noise(rng, x, y, noise, shuffle)


def _spiral(*, n, classes, noise, seed, one_hot, shuffle):
    """``classes`` spiral arms of ``n`` points each; arm k has label k (CS231n's spiral)."""
    rng = np.random.default_rng(seed)
    points, labels = [], []
    for k in range(classes):
        radius = np.linspace(0.0, 1.0, n)
        angle = np.linspace(k * 4.0, (k + 1) * 4.0, n) + rng.normal(scale=noise, size=n)
        points.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        labels.append(np.full(n, k, dtype=np.int64))
    x, y = np.concatenate(points), np.concatenate(labels)
    if shuffle:
        order = rng.permutation(len(x))
        x, y = x[order], y[order]
    if one_hot:
        y = np.eye(classes, dtype=np.float32)[y]
    return x, y


def _linear(*, n, low, high, w, b, noise, seed):
    """``y = w*x + b + N(0, noise)``; a list ``w`` makes one feature per weight."""
    if high <= low:
        raise ValueError("'high' must be greater than 'low'")
    rng = np.random.default_rng(seed)
    weights = np.atleast_1d(np.asarray(w, dtype=np.float64))
    x = rng.uniform(low, high, size=(n, len(weights)))
    y = (x @ weights).reshape(n, 1) + b + rng.normal(scale=noise, size=(n, 1))
    return x, y


def _polynomial(*, n, low, high, coefficients, noise, seed):
    """``y = c0 + c1*x + c2*x^2 + ... + N(0, noise)`` for x uniform in [low, high]."""
    if high <= low:
        raise ValueError("'high' must be greater than 'low'")
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, size=(n, 1))
    y = sum(c * x ** power for power, c in enumerate(coefficients))
    y = y + rng.normal(scale=noise, size=(n, 1))
    return x, y


def _check_generator_size(ctx, name, options):
    """Refuse, before generating, a data set over ``limits.MAX_GENERATED`` examples or
    ``limits.MAX_GENERATED_NUMBERS`` numbers (per array, or work of the polynomial)."""
    n = options.get("n", 4)
    examples = n * options.get("classes", 1)
    width = max(2, len(options["w"]) if isinstance(options.get("w"), list) else 1,
                len(options.get("coefficients") or ()),
                options["classes"] if options.get("one_hot") else 1)
    if examples > limits.MAX_GENERATED:
        raise ctx.model_error(f"generator {name}: {examples:,} examples"
                              f"{' (n * classes)' if 'classes' in options else ''}, more than "
                              f"the limit of {limits.MAX_GENERATED:,}", "n")
    if examples * width > limits.MAX_GENERATED_NUMBERS:
        raise ctx.model_error(f"generator {name}: {examples:,} examples of {width:,} numbers "
                              f"each, more than the limit of {limits.MAX_GENERATED_NUMBERS:,} "
                              "numbers", "n")


def _gate(name):
    def make(**options):
        return _truth_table(name, **options)
    make.__doc__ = f"The {name.upper()} truth table."
    return make


_GATE_OPTIONS = {"targets": ("binary", _choice("binary", "sign"))}

#: Every generator: its function and its options as ``name: (default, checker)``.
GENERATORS = {
    "xor": (_gate("xor"), _GATE_OPTIONS),
    "and": (_gate("and"), _GATE_OPTIONS),
    "or": (_gate("or"), _GATE_OPTIONS),
    "nand": (_gate("nand"), _GATE_OPTIONS),
    "circles": (_circles, {"n": (500, _count), "noise": (0.2, _nonnegative),
                           "factor": (0.3, _factor), "seed": (0, _seed),
                           "shuffle": (True, _flag)}),
    "moons": (_moons, {"n": (500, _count), "noise": (0.1, _nonnegative), "seed": (0, _seed),
                       "shuffle": (True, _flag)}),
    "spiral": (_spiral, {"n": (100, _count), "classes": (3, _classes),
                         "noise": (0.2, _nonnegative), "seed": (0, _seed),
                         "one_hot": (False, _flag), "shuffle": (True, _flag)}),
    "linear": (_linear, {"n": (100, _count), "low": (-1.0, _moderate),
                         "high": (1.0, _moderate), "w": (1.0, _real_or_reals),
                         "b": (0.0, _moderate),
                         "noise": (0.1, _nonnegative), "seed": (0, _seed)}),
    "polynomial": (_polynomial, {"n": (100, _count), "low": (-1.0, _moderate),
                                 "high": (1.0, _moderate),
                                 "coefficients": ([0.0, 0.0, 1.0], _reals),
                                 "noise": (0.1, _nonnegative), "seed": (0, _seed)}),
}

_DATASET_OPTIONS = ("split", "scale", "flatten", "one_hot", "names")
_FILE_OPTIONS = ("columns", "keys", "delimiter", "names")


# ----------------------------------------------------------------------------------------------
# Error helpers: one small object per split knows where its keys are in the model file.
# ----------------------------------------------------------------------------------------------

class _Context:
    """What loading one source needs: the model's inputs, folders, and how to locate keys."""

    def __init__(self, split, inputs, base_dir, data_dir, at):
        self.split = split
        self.inputs = inputs
        self.base_dir = Path(base_dir)
        self.data_dir = data_dir
        self.at = at
        self.kind = None          # the source kind, once known

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

    def option(self, source, key, default, check):
        """Read ``source[key]`` (or ``default``) and check it; a bad value is a ModelError."""
        if key not in source:
            return default
        try:
            return check(source[key])
        except ValueError as exc:
            raise self.model_error(f"{self.where()}.{key} {exc}", key) from None

    def input_name(self, name, *keys) -> str:
        """Check that ``name`` is one of the model's inputs."""
        if not isinstance(name, str) or name not in self.inputs:
            raise self.model_error(
                f"{self.where()}: {short(name)} is not an input of the model"
                f"{did_you_mean(name, self.inputs)}; inputs: {known(self.inputs)}", *keys)
        return name


def _check_keys(ctx, mapping, allowed, what, *keys):
    """Raise a ModelError for the first key of ``mapping`` not in ``allowed``."""
    for key in mapping:
        if key not in allowed:
            raise ctx.model_error(
                f"unknown key {short(key)} in {what}{did_you_mean(key, allowed)}; "
                f"valid keys: {known(allowed, limit=30)}", *keys, key)


# ----------------------------------------------------------------------------------------------
# The entry point.
# ----------------------------------------------------------------------------------------------

def load_data(data: dict | None, inputs: dict[str, dict], *, base_dir: str | Path,
              data_dir: str | None = None, at=None) -> DataSplits:
    """Load the ``data`` section of a model into arrays.

    ``inputs`` is the model's ``inputs`` section (name -> ``{"shape": [...], "dtype": ...}``, in
    file order); ``base_dir`` is the model file's folder (``file:`` paths are relative to it);
    ``data_dir`` is where to look for MNIST first (the CLI's ``--data-dir``).  ``at(*keys)``,
    if given, maps a key path under ``data`` (for example ``at("train", "noise")``) to the
    :class:`~minigraph.errors.Location` of that key, for error messages.

    Returns :class:`DataSplits`; both parts are ``None`` when ``data`` is ``None``.  Each array
    has its input's declared dtype (default float32) and fits its declared shape.
    """
    inputs = dict(inputs or {})
    if data is None:
        return DataSplits(train=None, test=None)
    top = _Context(None, inputs, base_dir, data_dir, at)
    if not isinstance(data, dict):
        raise top.model_error("'data' must be a mapping with a 'train' source "
                              "and optionally a 'test' source")
    _check_keys(top, data, ("train", "test"), "data")
    if data.get("train") is None:
        raise top.model_error("'data' needs a 'train' source, for example "
                              "train: {generator: xor}")

    train_ctx = _Context("train", inputs, base_dir, data_dir, at)
    train = _load_source(train_ctx, data["train"])
    fraction = train_ctx.option(data["train"], "test_fraction", None, _real)

    test = None
    if data.get("test") is not None:
        test_ctx = _Context("test", inputs, base_dir, data_dir, at)
        if isinstance(data["test"], dict) and "test_fraction" in data["test"]:
            raise test_ctx.model_error("test_fraction belongs in the train source: it splits "
                                       "the training data into train and test", "test_fraction")
        if fraction is not None:
            raise train_ctx.model_error("data has both a 'test' source and "
                                        "data.train.test_fraction; use one of them",
                                        "test_fraction")
        test = _finish(test_ctx, _load_source(test_ctx, data["test"]))
    elif fraction is not None:
        seed = train_ctx.option(data["train"], "split_seed", 0, _seed)
        train, test = _split(train_ctx, train, fraction, seed)
        # Errors about the split-off test set point at the train source it came from.
        test = _finish(train_ctx, test, label="test (split off the train source)")
    if fraction is None and isinstance(data["train"], dict) and "split_seed" in data["train"]:
        raise train_ctx.model_error("split_seed only applies with test_fraction, which is not "
                                    "given", "split_seed")
    train = _finish(train_ctx, train)
    return DataSplits(train=train, test=test)


def _load_source(ctx, source):
    """Read one source (a train or test entry) into a dict of raw arrays."""
    if not isinstance(source, dict):
        raise ctx.model_error(f"{ctx.where()} must be a mapping with one of the keys "
                              f"{', '.join(SOURCE_KINDS)}, not {short(source)}")
    kinds = [k for k in SOURCE_KINDS if k in source]
    if not kinds:
        for key in source:            # most likely a misspelt kind: say so at that key
            hint = did_you_mean(key, SOURCE_KINDS)
            if hint:
                raise ctx.model_error(f"unknown key {short(key)} in {ctx.where()}{hint}; a source "
                                      f"needs one of {', '.join(SOURCE_KINDS)}", key)
        raise ctx.model_error(f"{ctx.where()} needs exactly one source key: "
                              f"{', '.join(SOURCE_KINDS)}")
    if len(kinds) > 1:
        raise ctx.model_error(f"{ctx.where()} has {' and '.join(map(repr, kinds))}; "
                              f"give exactly one source", kinds[1])
    ctx.kind = kind = kinds[0]

    if kind == "inline":
        _check_keys(ctx, source, ("inline",) + SPLIT_KEYS, ctx.where())
        arrays = _inline(ctx, source["inline"])
    elif kind == "file":
        _check_keys(ctx, source, ("file",) + _FILE_OPTIONS + SPLIT_KEYS, ctx.where())
        arrays = _file(ctx, source)
    elif kind == "generator":
        arrays = _generator(ctx, source)
    else:
        arrays = _dataset(ctx, source)

    limit = ctx.option(source, "limit", None, _count)
    if limit is not None:
        arrays = {name: (a if a.ndim == 0 else a[:limit]) for name, a in arrays.items()}
    for name, array in arrays.items():
        keys = _source_keys(ctx, name)
        if array.size == 0:
            raise ctx.data_error(f"{ctx.where()}: the data for input {short(name)} is empty "
                                 f"(shape {array.shape}); there is nothing to train or test on",
                                 *keys)
        if array.size > limits.MAX_ELEMENTS:
            raise ctx.data_error(f"{ctx.where()}: the data for input {short(name)} holds "
                                 f"{array.size:,} numbers, more than the limit of "
                                 f"{limits.MAX_ELEMENTS:,}", *keys)
    return arrays


def _default_names(ctx, source):
    """The inputs that a generator, file or dataset fills: ``names``, or the first two inputs."""
    if "names" in source:
        names = source["names"]
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not 1 <= len(names) <= 2:
            raise ctx.model_error(f"{ctx.where()}.names must be a list of one or two input "
                                  f"names, like [x, t], not {short(names)}", "names")
        for name in names:
            ctx.input_name(name, "names")
        if len(set(names)) != len(names):
            raise ctx.model_error(f"{ctx.where()}.names repeats {short(names[0])}", "names")
        return list(names)
    if not ctx.inputs:
        raise ctx.model_error(f"{ctx.where()}: the model has no inputs to put the data in")
    return list(ctx.inputs)[:2]


def _fit_rank(ctx, name, array):
    """Turn an ``(n, 1)`` column into ``(n,)`` or back when the declared rank asks for it."""
    shape = ctx.inputs.get(name, {}).get("shape")
    if shape is None:
        return array
    if array.ndim == 2 and array.shape[1] == 1 and len(shape) == 1:
        return array[:, 0]
    if array.ndim == 1 and len(shape) == 2 and shape[1] == 1:
        return array[:, None]
    return array


# ----------------------------------------------------------------------------------------------
# inline
# ----------------------------------------------------------------------------------------------

def _inline(ctx, table):
    if not isinstance(table, dict) or not table:
        raise ctx.model_error(f"{ctx.where()}.inline must map input names to arrays, "
                              f"like {{x: [[0, 1]], t: [[1]]}}", "inline")
    arrays = {}
    for name, value in table.items():
        ctx.input_name(name, "inline", name)
        try:
            array = np.array(value)
        except (ValueError, TypeError, OverflowError, RecursionError):
            raise ctx.data_error(f"{ctx.where()}.inline.{name} is ragged: every row must "
                                 f"have the same length", "inline", name) from None
        if array.dtype.kind not in "biuf":
            raise ctx.data_error(f"{ctx.where()}.inline.{name} must contain only numbers",
                                 "inline", name)
        arrays[name] = array
    return arrays


# ----------------------------------------------------------------------------------------------
# file: CSV, .npy, .npz
# ----------------------------------------------------------------------------------------------

def _shown(path) -> str:
    """A path for a one-line message: as it is, or quoted when it holds odd characters."""
    text = str(path)
    return text if text.isprintable() and len(text) <= 300 else short(text, 300)


def _file(ctx, source):
    raw = source["file"]
    if not isinstance(raw, str) or not raw:
        raise ctx.model_error(f"{ctx.where()}.file must be a path, not {short(raw)}", "file")
    if "\0" in raw:
        raise ctx.model_error(f"{ctx.where()}.file {short(raw)} contains a NUL character",
                              "file")
    try:
        path = Path(raw).expanduser()
    except RuntimeError as exc:   # ~nosuchuser/...
        raise ctx.data_error(f"cannot expand the data file path {short(raw)}: {exc}",
                             "file") from None
    if not path.is_absolute():
        path = ctx.base_dir / path
    suffix = path.suffix.lower()
    if suffix == ".npz":
        if "columns" in source or "delimiter" in source:
            key = "columns" if "columns" in source else "delimiter"
            raise ctx.model_error(f"{short(key)} is for CSV and .npy files; an .npz archive "
                                  f"uses keys: {{x: X, t: y}}", key)
        with _open_data_file(ctx, path, limits.MAX_DATA_BYTES) as (handle, size):
            return _npz(ctx, source, path, handle)
    if "keys" in source:
        raise ctx.model_error("'keys' is for .npz archives; CSV and .npy files use "
                              "columns: {x: [0, 1], t: [2]}", "keys")
    header = None
    if suffix == ".npy":
        if "delimiter" in source:
            raise ctx.model_error("'delimiter' is for CSV files", "delimiter")
        with _open_data_file(ctx, path, limits.MAX_DATA_BYTES) as (handle, size):
            table = _read_npy(ctx, path, lambda: handle, size)
    else:
        default = "\t" if suffix == ".tsv" else ","
        delimiter = ctx.option(source, "delimiter", default, _delimiter)
        with _open_data_file(ctx, path, limits.MAX_CSV_BYTES) as (handle, size):
            header, table = _read_csv(ctx, path, handle, size, delimiter)
    return _columns(ctx, source, table, header, path)


@contextlib.contextmanager
def _open_data_file(ctx, path, max_bytes):
    """Open a data file for reading, as ``(binary handle, size)``: only a regular file of 1 to
    ``max_bytes`` bytes (never a folder, FIFO or device); every failure is located."""
    shown = _shown(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ctx.data_error(f"data file not found: {shown} (a relative path is read from the "
                             f"model file's folder, {_shown(ctx.base_dir)})", "file") from None
    except PermissionError:
        raise ctx.data_error(f"cannot read data file {shown}: permission denied",
                             "file") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ctx.data_error(f"cannot open data file {shown}: {reason}", "file") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ctx.data_error(f"data file {shown} is a folder, not a file", "file")
        raise ctx.data_error(f"data file {shown} is not a regular file (a FIFO, device "
                             "or socket); give the path of a file", "file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size == 0:
            raise ctx.data_error(f"data file {shown} is empty", "file")
        if info.st_size > max_bytes:
            raise ctx.data_error(f"data file {shown} has {info.st_size:,} bytes, more than the "
                                 f"limit of {max_bytes:,} for this kind of file", "file")
        try:
            yield handle, info.st_size
        except OSError as exc:
            raise ctx.data_error(f"cannot read data file {shown}: "
                                 f"{getattr(exc, 'strerror', None) or exc}", "file") from None


def _read_npy(ctx, path, open_array, size, what=""):
    """Read one .npy array (a file, or a member of an .npz archive) after checking its header:
    numbers only, and no more bytes than the file holds or the limits allow."""
    shown = f"{_shown(path)}{what}"
    handle = open_array()
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        header = handle.tell()
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise ctx.data_error(f"cannot read {shown} as a .npy array: {short(str(exc), 200)}",
                             "file") from None
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.hasobject:
        raise ctx.data_error(f"{shown} holds {short(str(dtype))} values, not numbers", "file")
    count = math.prod(shape)
    if count == 0:
        raise ctx.data_error(f"{shown} holds an empty array of shape {shape}", "file")
    if count > limits.MAX_ELEMENTS or count * dtype.itemsize > limits.MAX_DATA_BYTES:
        raise ctx.data_error(f"{shown} claims an array of shape {shape} ({count:,} numbers), "
                             f"more than the limit of {limits.MAX_ELEMENTS:,}", "file")
    if count * dtype.itemsize > size - header:
        raise ctx.data_error(f"{shown} is truncated or corrupt: its header promises shape "
                             f"{shape} ({count * dtype.itemsize:,} bytes of data) but it holds "
                             f"{max(size - header, 0):,}", "file")
    try:
        handle = open_array()
        handle.seek(0)
        return np.lib.format.read_array(handle, allow_pickle=False)
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise ctx.data_error(f"cannot read {shown} as a .npy array: {short(str(exc), 200)}",
                             "file") from None


_BAD_DELIMITERS = "\"\r\n\0"


def _delimiter(value):
    if not isinstance(value, str) or len(value) != 1 or value in _BAD_DELIMITERS \
            or not (value.isprintable() or value == "\t"):
        raise ValueError(f"must be one character, like ',' or ';', not {short(value)}")
    return value


def _read_csv(ctx, path, handle, size, delimiter):
    """Read a numeric CSV table; return (header names or None, float64 array (rows, columns))."""
    shown = _shown(path)
    raw = handle.read(min(size, limits.MAX_CSV_BYTES) + 1)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ctx.data_error(f"{shown}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} "
                             "cannot be decoded); save the file as UTF-8", "file") from None
    del raw
    values, header, width, rows = pyarray.array("d"), None, None, 0
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            line_number = reader.line_num
            cells = [cell.strip() for cell in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            try:
                numbers = [float(cell) for cell in cells]
            except ValueError:
                # the first row may be column names: all present, not all numbers
                if not rows and header is None and all(cells):
                    header, width = cells, len(cells)
                    continue
                bad = next(c for c in cells if not _is_number(c))
                raise ctx.data_error(f"{shown}:{line_number}: {short(bad)} is not a number",
                                     "file") from None
            if width is not None and len(numbers) != width:
                raise ctx.data_error(f"{shown}:{line_number}: {len(numbers)} columns, but the "
                                     f"first row has {width}", "file")
            width = len(numbers)
            values.extend(numbers)
            rows += 1
    except csv.Error as exc:
        raise ctx.data_error(f"{shown}:{reader.line_num}: not a readable CSV line: {exc}",
                             "file") from None
    if not rows:
        raise ctx.data_error(f"{shown} has no rows of numbers", "file")
    return header, np.frombuffer(values, dtype=np.float64).reshape(rows, width).copy()


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _columns(ctx, source, table, header, path):
    """Cut a table (CSV or .npy) into input arrays by ``columns`` or by the default rule."""
    if "columns" not in source:
        names = _default_names(ctx, source)
        if len(names) == 1:
            return {names[0]: _fit_rank(ctx, names[0], table)}
        if table.ndim != 2 or table.shape[1] < 2:
            raise ctx.data_error(f"{path}: need a table of at least two columns to split into "
                                 f"{names[0]} (all but the last column) and {names[1]} (the last); "
                                 f"got shape {table.shape}. Use columns: to choose", "file")
        return {names[0]: _fit_rank(ctx, names[0], table[:, :-1]),
                names[1]: _fit_rank(ctx, names[1], table[:, -1:])}

    if "names" in source:
        raise ctx.model_error("give either 'columns' or 'names', not both: columns already "
                              "says which input gets which columns", "names")
    mapping = source["columns"]
    if not isinstance(mapping, dict) or not mapping:
        raise ctx.model_error(f"{ctx.where()}.columns must map input names to column indices, "
                              f"like {{x: [0, 1], t: [2]}}", "columns")
    if table.ndim == 1:
        table = table[:, None]
    if table.ndim != 2:
        raise ctx.data_error(f"{path}: columns need a 2-D table, but the array has shape "
                             f"{table.shape}", "file")
    arrays = {}
    for name, spec in mapping.items():
        ctx.input_name(name, "columns", name)
        indices = spec if isinstance(spec, list) else [spec]
        if not indices:
            raise ctx.model_error(f"{ctx.where()}.columns.{name} is empty", "columns", name)
        if len(indices) * table.shape[0] > limits.MAX_ELEMENTS:
            raise ctx.model_error(f"{ctx.where()}.columns.{name}: {len(indices):,} columns of "
                                  f"{table.shape[0]:,} rows is more than the limit of "
                                  f"{limits.MAX_ELEMENTS:,} numbers", "columns", name)
        picked = [_column_index(ctx, name, c, table.shape[1], header) for c in indices]
        arrays[name] = table[:, picked] if isinstance(spec, list) else table[:, picked[0]]
    return arrays


def _column_index(ctx, name, column, width, header):
    """Turn one entry of ``columns`` (an index or a header name) into a column index."""
    if isinstance(column, str):
        if header is None:
            raise ctx.model_error(f"column {short(column)} given by name, but the file has no "
                                  f"header row; use column numbers counted from 0",
                                  "columns", name)
        if column not in header:
            raise ctx.data_error(f"no column named {short(column)}{did_you_mean(column, header)}; "
                                 f"columns: {', '.join(header)}", "columns", name)
        return header.index(column)
    if isinstance(column, bool) or not isinstance(column, int):
        raise ctx.model_error(f"column {short(column)} must be a column number (from 0)",
                              "columns", name)
    if not -width <= column < width:
        raise ctx.data_error(f"column {column} does not exist: the table has {width} columns "
                             f"(numbered 0 to {width - 1})", "columns", name)
    return column


_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
               NotImplementedError, RuntimeError)   # RuntimeError: an encrypted member


def _npz(ctx, source, path, handle):
    """Read the arrays the model needs from an .npz archive (a zip of .npy files); each
    member's header is checked before its data is read."""
    shown = _shown(path)
    try:
        archive = zipfile.ZipFile(handle)
        members = archive.infolist()
    except _ZIP_ERRORS as exc:
        raise ctx.data_error(f"cannot read {shown} as an .npz archive: "
                             f"{short(str(exc), 200)}", "file") from None
    if len(members) > limits.MAX_NPZ_MEMBERS:
        raise ctx.data_error(f"{shown} holds {len(members):,} arrays, more than the limit of "
                             f"{limits.MAX_NPZ_MEMBERS:,}", "file")
    stored = {m.filename[:-4]: m for m in members if m.filename.endswith(".npy")}

    def load(key):
        member = stored[key]
        opened = []

        def open_member():
            for old in opened:
                old.close()
            try:
                opened.append(archive.open(member))
            except _ZIP_ERRORS as exc:
                raise ctx.data_error(f"cannot read array {short(key)} of {shown}: "
                                     f"{short(str(exc), 200)}", "file") from None
            return opened[-1]
        try:
            return _read_npy(ctx, path, open_member, member.file_size,
                             f" (array {short(key)})")
        except _ZIP_ERRORS as exc:
            raise ctx.data_error(f"cannot read array {short(key)} of {shown}: "
                                 f"{short(str(exc), 200)}", "file") from None
        finally:
            for old in opened:
                old.close()
    if "keys" in source:
        if "names" in source:
            raise ctx.model_error("give either 'keys' or 'names', not both", "names")
        mapping = source["keys"]
        if not isinstance(mapping, dict) or not mapping:
            raise ctx.model_error(f"{ctx.where()}.keys must map input names to array names "
                                  f"in the archive, like {{x: X, t: y}}", "keys")
        arrays = {}
        for name, key in mapping.items():
            ctx.input_name(name, "keys", name)
            if not isinstance(key, str):
                raise ctx.model_error(f"{ctx.where()}.keys.{name} must be an array name (a "
                                      f"string), got {short(key)}", "keys", name)
            if key not in stored:
                raise ctx.data_error(f"{shown} has no array {short(key)}{did_you_mean(key, stored)}; "
                                     f"it holds: {known(stored)}", "keys", name)
            arrays[name] = _fit_rank(ctx, name, load(key))
    else:
        wanted = _default_names(ctx, source) if "names" in source else list(ctx.inputs)
        arrays = {name: _fit_rank(ctx, name, load(name)) for name in wanted if name in stored}
        if not arrays:
            raise ctx.data_error(f"{shown} holds {known(stored)}, none of which is named like "
                                 f"a model input ({known(ctx.inputs)}); map them with "
                                 f"keys: {{input: array}}", "file")
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise ctx.data_error(f"{shown}: array for {short(name)} holds {array.dtype}, not numbers",
                                 "file")
    return arrays


# ----------------------------------------------------------------------------------------------
# generator
# ----------------------------------------------------------------------------------------------

def _generator(ctx, source):
    name = source["generator"]
    if not isinstance(name, str) or name not in GENERATORS:
        raise ctx.model_error(f"unknown generator {short(name)}{did_you_mean(name, GENERATORS)}; "
                              f"generators: {known(GENERATORS)}", "generator")
    make, spec = GENERATORS[name]
    _check_keys(ctx, source, ("generator", "names") + tuple(spec) + SPLIT_KEYS,
                f"{ctx.where()} (generator {name})")
    options = {key: ctx.option(source, key, default, check)
               for key, (default, check) in spec.items()}
    _check_generator_size(ctx, name, options)
    try:
        with np.errstate(all="ignore"):
            features, targets = make(**options)
    except (ValueError, OverflowError) as exc:
        raise ctx.model_error(f"generator {name}: {exc}", "generator") from None
    if not (np.isfinite(features).all() and np.isfinite(targets).all()):
        raise ctx.model_error(f"generator {name}: its options give numbers too large for "
                              "float64 (inf or NaN); use smaller values", "generator")
    names = _default_names(ctx, source)
    arrays = {names[0]: _fit_rank(ctx, names[0], features)}
    if len(names) == 2:
        arrays[names[1]] = _fit_rank(ctx, names[1], targets)
    return arrays


# ----------------------------------------------------------------------------------------------
# dataset: mnist
# ----------------------------------------------------------------------------------------------

DATASETS = ("mnist",)


def _dataset(ctx, source):
    name = source["dataset"]
    if name not in DATASETS:
        raise ctx.model_error(f"unknown dataset {short(name)}{did_you_mean(name, DATASETS)}; "
                              f"datasets: {known(DATASETS)}", "dataset")
    _check_keys(ctx, source, ("dataset",) + _DATASET_OPTIONS + SPLIT_KEYS,
                f"{ctx.where()} (dataset {name})")
    split = ctx.option(source, "split", ctx.split, _choice("train", "test"))
    scale = ctx.option(source, "scale", 255.0, _scale)
    flatten = ctx.option(source, "flatten", None, _flag)
    one_hot = ctx.option(source, "one_hot", None, _flag)
    limit = ctx.option(source, "limit", None, _count)
    names = _default_names(ctx, source)

    try:
        folder = mnist_files(ctx.data_dir)
    except DataError as exc:
        raise ctx.data_error(exc.message, "dataset") from None
    image_file, label_file = (_find_file(folder, f) for f in MNIST_FILES[split])
    try:
        images = _read_idx(image_file, IDX_IMAGES_MAGIC)
        labels = _read_idx(label_file, IDX_LABELS_MAGIC)
    except DataError as exc:
        raise ctx.data_error(exc.message, "dataset") from None
    if labels.size and labels.max() > 9:
        raise ctx.data_error(f"{_shown(label_file)} is corrupt: it holds the label "
                             f"{int(labels.max())}, but MNIST labels are 0 to 9", "dataset")
    if len(images) != len(labels):
        raise ctx.data_error(f"{image_file} has {len(images)} images but {label_file} has "
                             f"{len(labels)} labels", "dataset")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]

    # Images: scale, then shape them the way the image input is declared.
    pixels = images.astype(np.float32)
    if scale is not None:
        pixels /= np.float32(scale)
    n, rows, cols = images.shape
    rank = _declared_rank(ctx, names[0])
    if flatten is None:
        flatten = rank == 2
    if flatten:
        pixels = pixels.reshape(n, rows * cols)
    elif rank != 3:
        pixels = pixels.reshape(n, 1, rows, cols)          # NCHW with one channel
    arrays = {names[0]: pixels}

    # Labels: class indices, or one-hot rows when asked (or declared with rank 2).
    if len(names) == 2:
        if one_hot is None:
            one_hot = _declared_rank(ctx, names[1]) == 2
        classes = labels.astype(np.int64)
        arrays[names[1]] = np.eye(10, dtype=np.float32)[classes] if one_hot else classes
    return arrays


def _scale(value):
    """``true`` -> 255, ``false`` -> no scaling (None), a positive number -> that number."""
    if value is True:
        return 255.0
    if value is False or value is None:
        return None
    value = _real(value)
    if value <= 0:
        raise ValueError(f"must be a positive number (pixels are divided by it), not {value}")
    return value


def _declared_rank(ctx, name):
    shape = ctx.inputs.get(name, {}).get("shape")
    return None if shape is None else len(shape)


def _find_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` or ``folder/name.gz``, whichever exists (plain first), else None."""
    for candidate in (folder / name, folder / (name + ".gz")):
        try:
            if candidate.is_file():
                return candidate
        except OSError:   # an unreadable folder on the way
            continue
    return None


def _search_dirs(data_dir=None):
    """Where MNIST is looked for, in order, as (folder, why it was searched)."""
    def expand(path):
        try:
            return Path(path).expanduser()
        except RuntimeError:   # ~nosuchuser: searched as written (and not found)
            return Path(path)

    bases = []
    if data_dir:
        bases.append((expand(data_dir), "from --data-dir"))
    if os.environ.get("MINIGRAPH_DATA"):
        bases.append((expand(os.environ["MINIGRAPH_DATA"]), "from MINIGRAPH_DATA"))
    bases.append((expand(DEFAULT_MNIST_DIR), "the default"))
    folders = []
    for base, why in bases:
        folders.append((base, why))
        folders.append((base / "mnist", why))
    return folders


def mnist_files(data_dir=None) -> Path:
    """The folder holding the four MNIST files, or a DataError saying where it looked.

    Looks in ``data_dir``, then ``$MINIGRAPH_DATA``, then ``~/.minigraph/data/mnist``; each
    folder may hold the files directly or in an ``mnist/`` subfolder.  Each file may be plain
    or gzip-compressed (``.gz``).
    """
    needed = [name for pair in MNIST_FILES.values() for name in pair]
    searched = []
    for folder, why in _search_dirs(data_dir):
        missing = [name for name in needed if _find_file(folder, name) is None]
        if not missing:
            return folder
        note = why
        if _is_dir(folder) and len(missing) < len(needed):
            found = len(needed) - len(missing)
            note += f"; has only {found} of the 4, missing {', '.join(missing)}"
        elif not _is_dir(folder):
            note += "; no such folder"
        searched.append(f"  {folder}  ({note})")
    raise DataError(
        "MNIST files not found. Needed: " + ", ".join(needed)
        + " (each may also end in .gz). Searched:\n" + "\n".join(searched)
        + "\nTo fix: put the four files in one of these folders, or point minigraph at the "
          "folder that holds them with --data-dir DIR or the environment variable "
          "MINIGRAPH_DATA=DIR.")


def _is_dir(folder: Path) -> bool:
    try:
        return folder.is_dir()
    except OSError:
        return False


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file (plain or .gz) as a read-only array; parsed files are cached."""
    try:
        info = path.stat()
    except OSError as exc:
        raise DataError(f"cannot read {_shown(path)}: {exc.strerror or exc}") from None
    return _read_idx_cached(str(path), info.st_mtime_ns, info.st_size, magic)


_GZIP_ERRORS = (OSError, EOFError, zlib.error)   # gzip.BadGzipFile is an OSError


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, mtime_ns: int, size: int, magic: int) -> np.ndarray:
    """Parse one IDX file.  The cache key includes the modification time, so an edited file
    is read again; the array is read-only so that no caller can change the cached copy."""
    shown = _shown(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {shown}: {getattr(exc, 'strerror', None) or exc}") \
            from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(f"{shown} is not a regular file")
    with os.fdopen(fd, "rb") as raw:
        try:
            if path.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="rb") as handle:
                    return _parse_idx_stream(handle, shown, magic)
            return _parse_idx_stream(raw, shown, magic)
        except _GZIP_ERRORS as exc:
            what = "a damaged gzip file" if path.endswith(".gz") else "unreadable"
            raise DataError(f"cannot read {shown}: it is {what} "
                            f"({getattr(exc, 'strerror', None) or exc or type(exc).__name__})") \
                from None


def _parse_idx(raw: bytes, path: str, magic: int) -> np.ndarray:
    """Decode IDX bytes (see :func:`_parse_idx_stream`)."""
    return _parse_idx_stream(io.BytesIO(raw), path, magic)


def _parse_idx_stream(handle, path: str, magic: int) -> np.ndarray:
    """Decode an IDX stream: a big-endian magic number (0, 0, type code, number of dimensions),
    then one big-endian 32-bit size per dimension, then the values (here: unsigned bytes).
    The sizes are checked against ``limits.MAX_ELEMENTS`` before the values are read."""
    head = handle.read(4)
    found = int.from_bytes(head, "big") if len(head) == 4 else None
    if found != magic:
        shown = "none (file too short)" if found is None else f"{found} (0x{found:08x})"
        kind = "image" if magic == IDX_IMAGES_MAGIC else "label"
        hint = ""
        if head[:2] == b"\x1f\x8b":
            hint = " It looks gzip-compressed: its name must end in .gz."
        raise DataError(f"{path} is not an MNIST {kind} file: its magic number is {shown}, "
                        f"expected {magic} (0x{magic:08x}).{hint}")
    ndim = head[3]
    sizes = handle.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(f"{path} is truncated: its header is incomplete")
    dims = tuple(int.from_bytes(sizes[4 * i:4 * i + 4], "big") for i in range(ndim))
    count = math.prod(dims)
    if count == 0:
        raise DataError(f"{path} holds no examples (its header says {dims})")
    if count > limits.MAX_ELEMENTS:
        raise DataError(f"{path} claims {dims} = {count:,} values, more than the limit of "
                        f"{limits.MAX_ELEMENTS:,}")
    data = handle.read(count + 1)
    if len(data) != count:
        raise DataError(f"{path} is truncated or corrupt: its header promises {dims} = {count} "
                        f"bytes of data, but it holds {len(data)}"
                        + (" or more" if len(data) > count else ""))
    return np.frombuffer(data, dtype=np.uint8, count=count).reshape(dims)


# ----------------------------------------------------------------------------------------------
# Train/test split, casting and shape checks.
# ----------------------------------------------------------------------------------------------

def _split(ctx, arrays, fraction, seed):
    """Split one set of arrays into (train, test) with a seeded random choice of test examples."""
    if not 0 < fraction < 1:
        raise ctx.model_error(f"{ctx.where()}.test_fraction must be between 0 and 1 "
                              f"(exclusive), not {fraction}", "test_fraction")
    try:
        n = num_examples(arrays)
    except DataError as exc:
        raise ctx.data_error(exc.message, ctx.kind) from None
    n_test = int(round(n * fraction))
    if not 1 <= n_test <= n - 1:
        raise ctx.data_error(f"test_fraction {fraction} of {n} examples leaves "
                             f"{n_test} for test and {n - n_test} for training; both need "
                             f"at least one", "test_fraction")
    order = np.random.default_rng(seed).permutation(n)
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])

    def take(index):
        return {name: (a if a.ndim == 0 else a[index]) for name, a in arrays.items()}
    return take(train_idx), take(test_idx)


def _finish(ctx, arrays, label=None):
    """Cast each array to its input's dtype and check it against the declared shape.

    ``label`` names the split in error messages (default: the context's split)."""
    label = label or ctx.split
    result = {name: _cast(ctx, label, name, array) for name, array in arrays.items()}
    _check_shapes(ctx, label, result)
    return result


def _source_keys(ctx, name):
    """The key path that best locates input ``name``'s data in the source."""
    return ("inline", name) if ctx.kind == "inline" else (ctx.kind,)


def _cast(ctx, split, name, array):
    declared = ctx.inputs.get(name, {}).get("dtype") or "float32"
    try:
        dtype = np.dtype(declared)
    except (TypeError, ValueError):
        raise ModelError(f"input {short(name)} has an unknown dtype {short(declared)}") from None
    keys = _source_keys(ctx, name)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ctx.data_error(f"{split} data for input {short(name)} holds NaN or infinite "
                             "values; every value must be a finite number", *keys)
    if dtype.kind in "iu" and array.dtype.kind in "fiu" and array.dtype != dtype:
        info = np.iinfo(dtype)
        if array.dtype.kind == "f" and not np.all(array == np.round(array)):
            raise ctx.data_error(f"{split} data for input {short(name)} has non-integer values, "
                                 f"but the input's dtype is {dtype}", *keys)
        if array.min() < info.min or array.max() > info.max:
            raise ctx.data_error(f"{split} data for input {short(name)} has values outside "
                                 f"the range of its dtype {dtype}", *keys)
    with np.errstate(all="ignore"):
        result = array.astype(dtype, copy=False)
    if dtype.kind == "f" and array.dtype.kind == "f" and not np.isfinite(result).all():
        raise ctx.data_error(f"{split} data for input {short(name)} has values too large "
                             f"for its dtype {dtype}", *keys)
    return result


def _shape_text(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _check_shapes(ctx, split, arrays):
    """Check each array against its declared shape; symbolic sizes must agree across arrays."""
    declared = {name: ctx.inputs.get(name, {}).get("shape") for name in arrays}
    try:
        bind_dims(declared, {name: a.shape for name, a in arrays.items()})
    except BindError as exc:
        name, keys = exc.name, _source_keys(ctx, exc.name)
        if exc.kind == "symbol":
            raise ctx.data_error(
                f"{split} data: {exc.describe()} (declared shapes "
                f"{_shape_text(declared[exc.other])} and {_shape_text(declared[name])}); "
                "they must be equal", *keys) from None
        hint = ""
        if (ctx.kind == "dataset" and exc.kind == "rank"
                and exc.shape[-1:] in ((28,), (784,))):  # the images, not the labels
            hint = " (set flatten: true for [batch, 784] or false for [batch, 1, 28, 28])"
        raise ctx.data_error(
            f"{split} data for input {short(name)} has shape {exc.shape}, but the model "
            f"declares {name} with shape {_shape_text(declared[name])}: {exc.describe()}{hint}",
            *keys) from None
    examples = {name: a.shape[0] for name, a in arrays.items()
                if declared[name] and isinstance(declared[name][0], str)}
    if len(set(examples.values())) > 1:
        detail = ", ".join(f"{name}: {n}" for name, n in examples.items())
        raise ctx.data_error(f"{split} data: the inputs have different numbers of examples "
                             f"({detail})", ctx.kind)


# ----------------------------------------------------------------------------------------------
# Batches.
# ----------------------------------------------------------------------------------------------

def num_examples(arrays) -> int:
    """The number of examples (the length of the first axis) shared by ``arrays``.

    Arrays with no axes (scalars) do not count; if every array is a scalar, that is one
    example.  An empty dict has 0 examples.  Different lengths raise a DataError."""
    if not arrays:
        return 0
    sizes = {name: np.shape(a)[0] for name, a in arrays.items() if np.ndim(a) > 0}
    if not sizes:
        return 1
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{name}: {n}" for name, n in sizes.items())
        raise DataError(f"the data's arrays have different numbers of examples ({detail})")
    return next(iter(sizes.values()))


def iterate_batches(arrays: dict[str, np.ndarray], batch_size: int | None, *, shuffle: bool,
                    rng: np.random.Generator, drop_last: bool = False):
    """Cut ``arrays`` into mini-batches for one epoch; yields dicts with the same keys.

    ``batch_size=None`` means full batch: one batch holding every example (the arrays
    themselves, not copies, when not shuffling).  With ``shuffle``, one permutation is drawn
    from ``rng`` when this function is called, so each epoch visits every example exactly once
    in a new order.  ``drop_last`` skips a final batch smaller than ``batch_size`` (so a
    ``batch_size`` larger than the data gives no batch at all).  Scalar arrays go whole into
    every batch.
    """
    if batch_size is not None and (isinstance(batch_size, bool)
                                   or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ModelError(f"batch_size must be a positive whole number, not {short(batch_size)}")
    n = num_examples(arrays)
    order = rng.permutation(n) if shuffle else None

    def take(index):
        return {name: (a if np.ndim(a) == 0 else a[index]) for name, a in arrays.items()}

    def batches():
        if batch_size is None:
            yield dict(arrays) if order is None else take(order)
            return
        for start in range(0, n, batch_size):
            stop = start + batch_size
            if stop > n and drop_last:
                return
            yield take(slice(start, stop) if order is None else order[start:stop])

    return batches()
