"""Small speed helpers of the kernels: BLAS column sums and cached constant arrays.

Both exist only to save time on a training step; the plain rules in ``ops/`` write
``g.sum(axis=0)`` and plain Python numbers instead.
"""
from __future__ import annotations

import math

import numpy

from ..backend import get_array_module


def sum_leading(g, axes: int):
    """``g`` summed over its first ``axes`` axes (a bias gradient: over batch and pixels).

    For floats this is one matrix-vector product, ``ones @ g`` with g seen as (rows, rest):
    BLAS runs it several times faster than ``sum`` runs a tall array with a short last axis
    (and, measured, no slower on tiny ones).  Equal to ``g.sum(axis=...)`` to rounding.
    """
    if g.dtype.kind != "f":
        return g.sum(axis=0) if axes == 1 else g.sum(axis=tuple(range(axes)))
    if g.ndim == 2 and axes == 1:  # a batch of rows, as it is
        return _ones(get_array_module(g), g.shape[0], g.dtype) @ g
    if not g.flags.c_contiguous:  # seeing it as (rows, rest) would copy it
        return g.sum(axis=tuple(range(axes)))
    rows = math.prod(g.shape[:axes])
    total = _ones(get_array_module(g), rows, g.dtype) @ g.reshape(rows, -1)
    return total if g.ndim == axes + 1 else total.reshape(g.shape[axes:])


_ONES: dict = {}


def _ones(xp, n, dtype):
    """A vector of n ones, kept: a training step asks for the same ones every time."""
    key = (xp, n, dtype.char)
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) >= 64:  # many batch sizes: start afresh rather than grow
            _ONES.clear()
        ones = _ONES[key] = xp.ones(n, dtype=dtype)
    return ones


_CONSTANTS: dict = {}


def constant(value, like):
    """``value`` as a read-only 0-d array of ``like``'s dtype and backend, made once.

    For the number operands of ops on tiny arrays: NumPy converts a Python number on every
    call (measured ~0.4 us, a tenth of an op on an XOR-sized array) but takes a 0-d array of
    the operand's own dtype as it is -- with the same result, as the number would have been
    converted to that dtype anyway.
    """
    key = (type(like), like.device, like.dtype, value)  # CuPy: one per GPU
    c = _CONSTANTS.get(key)
    if c is None:
        if len(_CONSTANTS) >= 256:  # e.g. a learning rate that changes every epoch
            _CONSTANTS.clear()
        c = _CONSTANTS[key] = get_array_module(like).asarray(value, dtype=like.dtype)
        if type(c) is numpy.ndarray:
            c.flags.writeable = False
    return c


def sigmoid_in_place(z):
    """1 / (1 + e^-z) as ``ops.activation.stable_sigmoid`` computes it (the same operations,
    so the same bits), written over a temporary instead of allocating three."""
    xp = get_array_module(z)
    if z.ndim == 0:
        return xp.asarray(xp.exp(-xp.logaddexp(0, -z)))
    t = xp.logaddexp(constant(0, z), -z)
    xp.negative(t, out=t)
    xp.exp(t, out=t)
    return t
