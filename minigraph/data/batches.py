"""Batches: the number of examples in a set of arrays, and one epoch's mini-batches."""
from __future__ import annotations

import numpy as np

from ..errors import DataError, ModelError
from ..limits import short


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

    ``batch_size=None`` means full batch: one batch holding every example, the arrays
    themselves (not copies).  With ``shuffle``, one permutation is drawn from ``rng`` when this
    function is called, so each epoch visits every example exactly once in a new order; a
    single batch of every example (``batch_size`` None or at least the number of examples) is
    not shuffled and draws nothing: its loss and gradient are means over all examples, which
    their order changes only in the last bits of rounding.  ``drop_last`` skips a final batch
    smaller than ``batch_size`` (so a ``batch_size`` larger than the data gives no batch at
    all).  Scalar arrays go whole into
    every batch.  (A trainer cuts the same arrays every epoch: it keeps one :class:`Batches`.)
    """
    epoch = Batches(arrays, batch_size, drop_last=drop_last).epoch(shuffle=shuffle, rng=rng)
    return (batch for batch, _ in epoch)


class Batches:
    """``arrays`` cut into mini-batches epoch after epoch, as :func:`iterate_batches` cuts
    them, with the checks and counts that do not change between epochs done once.

    ``epoch(shuffle=, rng=)`` yields each batch with its number of examples.
    """

    def __init__(self, arrays: dict, batch_size: int | None, *, drop_last: bool = False):
        if batch_size is not None and (isinstance(batch_size, bool)
                                       or not isinstance(batch_size, (int, np.integer))
                                       or batch_size < 1):
            raise ModelError(f"batch_size must be a positive whole number, not "
                             f"{short(batch_size)}")
        self.arrays, self.batch_size, self.drop_last = arrays, batch_size, drop_last
        self.n = num_examples(arrays)
        # one batch of every example: used as it is, in its own order
        self.whole = batch_size is None or (0 < self.n <= batch_size
                                            and not (drop_last and batch_size > self.n))
        # (name, array, whether it goes whole into every batch: a scalar)
        self.items = tuple((name, a, np.ndim(a) == 0) for name, a in arrays.items())

    def epoch(self, *, shuffle: bool, rng: np.random.Generator):
        """One epoch's ``(batch, examples)`` pairs, to iterate once; the permutation is drawn
        now (none for a single batch of every example, see :func:`iterate_batches`)."""
        if self.whole:  # a new dict each epoch: a pass adds its values to the one it gets
            return ((dict(self.arrays), self.n),)
        return self._cut(rng.permutation(self.n) if shuffle else None)

    def _cut(self, order):
        n, size = self.n, self.batch_size
        for start in range(0, n, size):
            stop = start + size
            if stop > n and self.drop_last:
                return
            index = slice(start, stop) if order is None else order[start:stop]
            yield self.take(index), min(stop, n) - start

    def take(self, index) -> dict:
        """The examples ``index`` (a slice or an index array) of every array."""
        if isinstance(index, slice):
            return {name: a if whole else a[index] for name, a, whole in self.items}
        return {name: a if whole else rows(a, index) for name, a, whole in self.items}


def rows(a, index):
    """``a[index]`` for an array of indices.  For a C-ordered NumPy array (the usual data)
    ``a.take(index, 0)`` gives the same rows, laid out the same way, at a fraction of the
    cost of fancy indexing on a small array."""
    if isinstance(a, np.ndarray) and a.flags.c_contiguous:
        return a.take(index, 0)
    return a[index]
