"""Buffers reused from one training step to the next.

A training step allocates the same arrays every time: the same images, columns and gradients,
of the same shapes.  Large arrays come fresh from the operating system each time they are
allocated, and touching fresh memory costs page faults (for the MNIST CNN on one core, about
an eighth of a step).  A :class:`Workspace` keeps them from one step to the next instead.
"""
from __future__ import annotations

import math
import sys

import numpy  # dtype sizes only: the arrays come from xp (NumPy or CuPy)


def held_only_by(container, key) -> bool:
    """Whether ``container[key]`` is referenced by nothing but ``container``.

    Read from the reference count, compared with that of an object only a list holds --
    a number measured below by this same function, so the check follows the interpreter's
    own counting (temporaries included), whatever its version.
    """
    return sys.getrefcount(container[key]) == _HELD_ONCE


def _calibrate() -> int:
    global _HELD_ONCE
    probe = [object()]  # an object that nothing but its list refers to
    for _HELD_ONCE in range(1, 16):
        if held_only_by(probe, 0):
            return _HELD_ONCE
    raise RuntimeError("could not calibrate reference counts")


_HELD_ONCE = _calibrate()


class Workspace:
    """Arrays reused from one step to the next: a training plan's buffers.

    ``empty(xp, shape, dtype)`` hands out an array that nothing refers to any more -- one an
    earlier step filled and then let go of -- or allocates a new one and keeps it for later.
    Whether an array is still in use is read from its reference count (views and saved
    arrays refer to it too), so a buffer anybody still holds is never handed out twice.
    Only large arrays are kept: below ``min_bytes`` the allocator's own free lists are
    faster (they hand back memory that is still in the cache).
    """

    min_bytes = 1 << 20  # smaller arrays come from the allocator, which recycles them warm

    def __init__(self):
        self.buffers: dict = {}  # (shape, dtype, module) -> arrays of that kind

    def empty(self, xp, shape, dtype):
        if math.prod(shape) * numpy.dtype(dtype).itemsize < self.min_bytes:
            return xp.empty(shape, dtype=dtype)
        arrays = self.buffers.setdefault((tuple(shape), dtype, xp), [])
        for i in range(len(arrays)):
            if held_only_by(arrays, i):
                return arrays[i]
        array = xp.empty(shape, dtype=dtype)
        arrays.append(array)
        return array

    def nbytes(self) -> int:
        return sum(a.nbytes for arrays in self.buffers.values() for a in arrays)
