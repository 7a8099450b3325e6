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
