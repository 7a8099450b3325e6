"""Small speed helpers of the kernels: BLAS column sums and cached constant arrays.

Both exist only to save time on a training step; the plain rules in ``ops/`` write
``g.sum(axis=0)`` and plain Python numbers instead.
"""
from __future__ import annotations

import math

import numpy

from ..backend import get_array_module


def sum_leading(g, axes: int, out=None):
    """``g`` summed over its first ``axes`` axes (a bias gradient: over batch and pixels).

    For floats this is one matrix-vector product, ``ones @ g`` with g seen as (rows, rest):
    BLAS runs it several times faster than ``sum`` runs a tall array with a short last axis
    (and, measured, no slower on tiny ones).  Equal to ``g.sum(axis=...)`` to rounding.
    ``out`` (a batch of rows only) receives the sums, as NumPy's ``out=``.
    """
    if g.ndim == 2 and axes == 1 and g.dtype.kind == "f":  # a batch of rows, as it is
        return column_sums(get_array_module(g), g, out)
    if g.dtype.kind != "f":
        return g.sum(axis=0) if axes == 1 else g.sum(axis=tuple(range(axes)))
    if not g.flags.c_contiguous:  # seeing it as (rows, rest) would copy it
        return g.sum(axis=tuple(range(axes)))
    rows = math.prod(g.shape[:axes])
    total = ones(get_array_module(g), rows, g.dtype) @ g.reshape(rows, -1)
    return total if g.ndim == axes + 1 else total.reshape(g.shape[axes:])


def column_sums(xp, g, out=None):
    """:func:`sum_leading` of a float matrix ``g`` over its rows, its module ``xp`` at hand."""
    return xp.matmul(ones(xp, g.shape[0], g.dtype), g, out=out)


_ONES: dict = {}


def ones(xp, n, dtype):
    """A vector of n ones, kept: a training step asks for the same ones every time."""
    key = (xp, n, dtype.char)
    found = _ONES.get(key)
    if found is None:
        if len(_ONES) >= 64:  # many batch sizes: start afresh rather than grow
            _ONES.clear()
        found = _ONES[key] = xp.ones(n, dtype=dtype)
    return found


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


def sigmoid_in_place(z, own=False):
    """1 / (1 + e^-z) as ``ops.activation.stable_sigmoid`` computes it (the same operations,
    so the same bits), written over one temporary instead of allocating three -- over ``z``
    itself when the caller owns it (``own``)."""
    xp = get_array_module(z)
    if z.ndim == 0:
        return xp.asarray(xp.exp(-xp.logaddexp(0, -z)))
    return sigmoid_over(xp, z, z if own else None, constant(0, z))


def sigmoid_over(xp, z, out, zero):
    """:func:`sigmoid_in_place` for an array z (ndim >= 1) with its module, the array to
    write (None: a new one) and 0 as a 0-d array of z's dtype already at hand."""
    t = xp.negative(z, out=out)
    xp.logaddexp(zero, t, out=t)
    xp.negative(t, out=t)
    xp.exp(t, out=t)
    return t
