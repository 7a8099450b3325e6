"""The ``data`` section: each split's source dispatched to its kind, then ``limit``, the
``test_fraction`` split and the checks against the declared inputs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import limits
from ..errors import DataError, did_you_mean
from ..limits import short
from ..options import Option
from . import files, generators, inline, kinds, mnist, window
from .batches import num_examples
from .checks import finish
from .context import SPLIT_SEED, SplitContext

#: The source kinds, each a module with ``load(ctx, source) -> {input name: array}``.
LOADERS = {"inline": inline.load, "file": files.load, "generator": generators.load,
           "dataset": mnist.load}
SOURCE_KINDS = tuple(LOADERS)

DATA_OPTIONS = {
    "train": Option("any", None, "the training data's source", convert=kinds.as_written),
    "test": Option("any", None, "the test data's source (optional)", convert=kinds.as_written),
}


@dataclass
class DataSplits:
    """The arrays of a model's data, keyed by input name; ``None`` where a split is absent."""

    train: dict[str, np.ndarray] | None
    test: dict[str, np.ndarray] | None
    # scores of a baseline forecast, constant over training (a window's persistence_mse)
    baselines: dict = field(default_factory=dict)


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
    top = SplitContext(None, inputs, base_dir, data_dir, at)
    if not isinstance(data, dict):
        raise top.model_error("'data' must be a mapping with a 'train' source "
                              "and optionally a 'test' source")
    top.check(data, DATA_OPTIONS, "data")
    if data.get("train") is None:
        raise top.model_error("'data' needs a 'train' source, for example "
                              "train: {generator: xor}")

    train_ctx = SplitContext("train", inputs, base_dir, data_dir, at)
    if isinstance(data["train"], dict) and "window" in data["train"]:
        return windowed(train_ctx, data)
    train = load_source(train_ctx, data["train"])
    fraction = train_ctx.options["test_fraction"]
    test = None
    if data.get("test") is not None:
        test_ctx = SplitContext("test", inputs, base_dir, data_dir, at)
        if isinstance(data["test"], dict) and "test_fraction" in data["test"]:
            raise test_ctx.model_error("test_fraction belongs in the train source: it splits "
                                       "the training data into train and test", "test_fraction")
        if fraction is not None:
            raise train_ctx.model_error("data has both a 'test' source and "
                                        "data.train.test_fraction; use one of them",
                                        "test_fraction")
        test = finish(test_ctx, load_source(test_ctx, data["test"]))
    elif fraction is not None:
        train, test = split(train_ctx, train, fraction,
                            train_ctx.value(data["train"], "split_seed", SPLIT_SEED))
        # Errors about the split-off test set point at the train source it came from.
        test = finish(train_ctx, test, label="test (split off the train source)")
    if fraction is None and "split_seed" in data["train"]:
        raise train_ctx.model_error("split_seed only applies with test_fraction, which is not "
                                    "given", "split_seed")
    return DataSplits(train=finish(train_ctx, train), test=test)


def load_source(ctx: SplitContext, source) -> dict:
    """Read one source (a train or test entry) into a dict of raw arrays, ``limit`` applied."""
    if not isinstance(source, dict):
        raise ctx.model_error(f"{ctx.where()} must be a mapping with one of the keys "
                              f"{', '.join(SOURCE_KINDS)}, not {short(source)}")
    given = [k for k in SOURCE_KINDS if k in source]
    if not given:
        for key in source:            # most likely a misspelt kind: say so at that key
            hint = did_you_mean(key, SOURCE_KINDS)
            if hint:
                raise ctx.model_error(f"unknown key {short(key)} in {ctx.where()}{hint}; a source "
                                      f"needs one of {', '.join(SOURCE_KINDS)}", key)
        raise ctx.model_error(f"{ctx.where()} needs exactly one source key: "
                              f"{', '.join(SOURCE_KINDS)}")
    if len(given) > 1:
        raise ctx.model_error(f"{ctx.where()} has {' and '.join(map(repr, given))}; "
                              f"give exactly one source", given[1])
    ctx.kind = given[0]
    arrays = LOADERS[ctx.kind](ctx, source)
    limit = ctx.options["limit"]
    if limit is not None:
        arrays = {name: (a if a.ndim == 0 else a[:limit]) for name, a in arrays.items()}
    for name, array in arrays.items():
        keys = ctx.keys_for(name)
        if array.size == 0:
            raise ctx.data_error(f"{ctx.where()}: the data for input {short(name)} is empty "
                                 f"(shape {array.shape}); there is nothing to train or test on",
                                 *keys)
        if array.size > limits.MAX_ELEMENTS:
            raise ctx.data_error(f"{ctx.where()}: the data for input {short(name)} holds "
                                 f"{array.size:,} numbers, more than the limit of "
                                 f"{limits.MAX_ELEMENTS:,}", *keys)
    return arrays


def split(ctx: SplitContext, arrays, fraction, seed):
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


def windowed(ctx: SplitContext, data) -> DataSplits:
    """A train source with a ``window``: windows of a time series, split by time
    (:mod:`minigraph.data.window`)."""
    if data.get("test") is not None:
        raise ctx.model_error("a windowed train source makes its own test part: give "
                              "test_fraction (the last steps become test windows), not a "
                              "'test' source", "window")
    train, test, baselines = window.load_windowed(ctx, data["train"])
    limit = ctx.options["limit"]
    if limit is not None:
        train = {name: a[:limit] for name, a in train.items()}
    test = None if test is None else finish(ctx, test, label="test (the last steps of the "
                                                               "train source)")
    return DataSplits(train=finish(ctx, train), test=test, baselines=baselines)
