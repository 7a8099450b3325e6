"""Sequence ops: cut a tensor along an axis (``slice``) and stack tensors along a new one
(``stack``) -- what a recurrent layer needs to take step t of ``x (batch, T, F)`` and to put
its T hidden states back together.

| op    | y                                        | dL/dx                                  |
| ----- | ---------------------------------------- | -------------------------------------- |
| slice | x[..., index, ...] or x[..., a:b:s, ...] | zeros with dL/dy put back at the slice |
| stack | [x1, ..., xn] along a new axis           | dL/dy cut at that axis, one per input  |

Neither changes a value, so their gradients only move numbers back into place.
"""
from __future__ import annotations

from .base import (Attr, AttrError, Op, ShapeError, fmt_shape, get_array_module, join_dim,
                   register, same_dim)


def _axis(axis, ndim, what):
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{what}: axis {axis} is out of range for a tensor of rank "
                         f"{ndim}" if ndim else f"{what}: a scalar has no axis to cut")
    return axis % ndim


@register
class Slice(Op):
    """One index (``index: t``, the axis disappears) or a range (``start``/``stop``/``step``,
    Python's rules, the axis stays) along ``axis``.

    ``{op: slice, inputs: [x], attrs: {axis: 1, index: 0}}`` takes the first time step of
    ``x (batch, T, F)``: ``(batch, F)``.  The gradient is zeros of x's shape with dL/dy
    written back where the slice came from.
    """

    name = "slice"
    attrs = {
        "axis": Attr("int", 0, "the axis to cut along"),
        "index": Attr("int", None, "take this one position (the axis is dropped)"),
        "start": Attr("int", None, "first position of a range (default 0)"),
        "stop": Attr("int", None, "end of a range, not included (default: the end)"),
        "step": Attr("int", None, "step of a range (default 1)", minimum=1),
    }

    def __init__(self, **attrs):
        super().__init__(**attrs)
        ranged = [k for k in ("start", "stop", "step") if getattr(self, k) is not None]
        if self.index is not None and ranged:
            raise AttrError(f"slice: give either index or start/stop/step, not both "
                            f"(index and {ranged[0]})")

    def _key(self, ndim):
        """The NumPy index that takes the slice of a tensor of rank ``ndim``."""
        axis = _axis(self.axis, ndim, "slice")
        cut = self.index if self.index is not None else slice(self.start, self.stop, self.step)
        return (slice(None),) * axis + (cut,)

    def infer(self, x):
        axis = _axis(self.axis, len(x), "slice")
        n = x[axis]
        if self.index is not None:
            if isinstance(n, int) and not -n <= self.index < n:
                raise ShapeError(f"slice: index {self.index} is out of range for axis "
                                 f"{self.axis} of size {n} in {fmt_shape(x)}")
            return tuple(x[:axis]) + tuple(x[axis + 1:])
        if isinstance(n, int):
            size = len(range(*slice(self.start, self.stop, self.step).indices(n)))
            if size == 0:
                raise ShapeError(f"slice: start={self.start}, stop={self.stop} leaves nothing "
                                 f"of axis {self.axis} (size {n}) of {fmt_shape(x)}")
        else:
            size = None  # a symbolic axis: the length is not known before data arrives
        return tuple(x[:axis]) + (size,) + tuple(x[axis + 1:])

    def forward(self, ctx, x):
        key = self._key(x.ndim)
        ctx.save(x.shape, key)
        return x[key]

    def backward(self, ctx, gy):
        shape, key = ctx.saved
        gx = get_array_module(gy).zeros(shape, dtype=gy.dtype)
        gx[key] = gy
        return (gx,)


@register
class Stack(Op):
    """Put tensors of one shape side by side along a new ``axis`` (NumPy's ``stack``).

    ``{op: stack, inputs: [h1, h2, h3], attrs: {axis: 1}}`` turns three ``(batch, H)``
    states into ``(batch, 3, H)``.  Input k's gradient is dL/dy at position k of the axis.
    """

    name = "stack"
    inputs = ("xs*",)
    attrs = {"axis": Attr("int", 0, "where the new axis goes (an axis of the output)")}

    def infer(self, *shapes):
        ndim = len(shapes[0])
        if any(len(s) != ndim for s in shapes):
            raise ShapeError("stack: inputs have different ranks: "
                             + ", ".join(fmt_shape(s) for s in shapes))
        out = list(shapes[0])
        for s in shapes[1:]:
            if not all(same_dim(a, b) for a, b in zip(out, s)):
                raise ShapeError("stack: inputs have different shapes: "
                                 + ", ".join(fmt_shape(t) for t in shapes))
            out = [join_dim(a, b) for a, b in zip(out, s)]
        axis = _axis(self.axis, ndim + 1, "stack")
        return tuple(out[:axis]) + (len(shapes),) + tuple(out[axis:])

    def forward(self, ctx, *xs):
        xp = get_array_module(*xs)
        axis = _axis(self.axis, xs[0].ndim + 1, "stack")
        ctx.save(axis, len(xs))
        return xp.stack(xs, axis=axis)

    def backward(self, ctx, gy):
        axis, n = ctx.saved
        head = (slice(None),) * axis
        return tuple(gy[head + (k,)] for k in range(n))
