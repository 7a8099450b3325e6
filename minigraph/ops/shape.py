"""Shape ops: reshape, flatten, concat, identity.

None of them changes a value, so their gradients only move numbers back into place:
reshape and flatten reshape the gradient back, concat cuts it into the pieces it glued.

Shape rules see symbolic dimensions (``"batch"``) and unknown ones (``None``).  A dimension
that is a product of symbols (``batch * 64``) cannot be written down, so it becomes ``None``.
"""
from __future__ import annotations

import math

from .base import Attr, AttrError, Op, ShapeError, fmt_shape, get_array_module, join_dim, Rule
from .base import norm_axis, register, same_dim


def _split_dims(shape):
    """(product of the known dims, list of symbolic dims, whether any dim is unknown)."""
    known = math.prod(d for d in shape if isinstance(d, int))
    symbols = [d for d in shape if isinstance(d, str)]
    unknown = any(d is None for d in shape)
    return known, symbols, unknown


@register
class Reshape(Op):
    """Same values, new shape; one entry of ``shape`` may be -1 ("whatever is left")."""

    name = "reshape"
    rule = Rule("the same numbers in a new shape; the gradient is reshaped back",
                "{out} = {x} as {out.shape}",
                {"x": "{∂out} as {x.shape}"})
    attrs = {"shape": Attr("ints", doc="the new shape; one entry may be -1")}

    def __init__(self, **attrs):
        super().__init__(**attrs)
        if self.shape.count(-1) > 1 or any(d < -1 or d == 0 for d in self.shape):
            raise AttrError(f"reshape: shape {self.shape} must hold positive sizes and at "
                            "most one -1")

    def infer(self, x):
        target = list(self.shape)
        fixed = math.prod(d for d in target if d != -1)
        known, symbols, unknown = _split_dims(x)
        if -1 not in target:
            if not unknown and not symbols and known != fixed:
                raise ShapeError(f"cannot reshape {fmt_shape(x)} ({known} values) into "
                                 f"{fmt_shape(target)} ({fixed} values)")
            if not unknown and symbols and fixed % known != 0:
                raise ShapeError(f"cannot reshape {fmt_shape(x)} into {fmt_shape(target)}: "
                                 f"{fixed} is not a multiple of {known}")
            return tuple(target)
        # Solve  rest * fixed = known * symbols  for the -1 entry.
        if unknown:
            rest = None
        elif not symbols:
            if known % fixed != 0:
                raise ShapeError(f"cannot reshape {fmt_shape(x)} ({known} values) into "
                                 f"{fmt_shape(target)}: {known} is not a multiple of {fixed}")
            rest = known // fixed
        elif len(symbols) == 1 and known == fixed:
            rest = symbols[0]  # (batch, 64, 7, 7) -> [-1, 3136] gives (batch, 3136)
        else:
            rest = None  # e.g. batch * 2: not a single name
        return tuple(rest if d == -1 else d for d in target)

    def forward(self, ctx, x):
        ctx.save(x.shape)
        return x.reshape(self.shape)

    def backward(self, ctx, gy):
        (shape,) = ctx.saved
        return (gy.reshape(shape),)


@register
class Flatten(Op):
    """Merge the axes from ``start_axis`` on into one: (N, C, H, W) -> (N, C*H*W)."""

    name = "flatten"
    rule = Rule("the same numbers with the trailing axes merged; the gradient is reshaped back",
                "{out} = {x} as {out.shape}",
                {"x": "{∂out} as {x.shape}"})
    attrs = {"start_axis": Attr("int", 1, "first axis to merge; the earlier ones are kept")}

    def _start(self, ndim):
        if ndim == 0:
            raise ShapeError("flatten needs a tensor of rank >= 1")
        return norm_axis(self.start_axis, ndim)[0]

    def infer(self, x):
        start = self._start(len(x))
        tail = x[start:]
        known, symbols, unknown = _split_dims(tail)
        if unknown or len(symbols) > 1 or (symbols and known != 1):
            merged = None
        elif symbols:
            merged = symbols[0]  # only one symbolic axis was merged, with 1s
        else:
            merged = known
        return tuple(x[:start]) + (merged,)

    def forward(self, ctx, x):
        start = self._start(x.ndim)
        ctx.save(x.shape)
        return x.reshape(x.shape[:start] + (math.prod(x.shape[start:]),))

    def backward(self, ctx, gy):
        (shape,) = ctx.saved
        return (gy.reshape(shape),)


@register
class Concat(Op):
    """Join tensors along ``axis`` (default -1, the last axis: feature vectors side by side).

    All inputs have the same rank and agree on every other axis.  The gradient is the
    output gradient cut back into pieces of the inputs' sizes along ``axis``.
    """

    name = "concat"
    inputs = ("xs*",)
    rule = Rule("joins its inputs along one axis; each input gets back its own slice of the "
                "gradient",
                "{out} = concat({xs})",
                {"xs": "the slice of {∂out} where {self} sits"})
    attrs = {"axis": Attr("int", -1, "the axis to join along; default -1 (the last)")}

    def infer(self, *shapes):
        ndim = len(shapes[0])
        if any(len(s) != ndim for s in shapes):
            raise ShapeError("concat: inputs have different ranks: "
                             + ", ".join(fmt_shape(s) for s in shapes))
        if ndim == 0:
            raise ShapeError("concat: cannot join rank-0 tensors")
        (axis,) = norm_axis(self.axis, ndim)
        out = list(shapes[0])
        for s in shapes[1:]:
            for i, d in enumerate(s):
                if i == axis:
                    continue
                if not same_dim(out[i], d):
                    raise ShapeError(f"concat along axis {self.axis}: shapes differ on axis "
                                     f"{i}: " + ", ".join(fmt_shape(t) for t in shapes))
                out[i] = join_dim(out[i], d)
        sizes = [s[axis] for s in shapes]
        out[axis] = sum(sizes) if all(isinstance(d, int) for d in sizes) else None
        return tuple(out)

    def forward(self, ctx, *xs):
        xp = get_array_module(*xs)
        (axis,) = norm_axis(self.axis, xs[0].ndim)
        ctx.save(axis, [x.shape[axis] for x in xs])
        return xp.concatenate(xs, axis=axis)

    def backward(self, ctx, gy):
        axis, sizes = ctx.saved
        grads, start = [], 0
        for size in sizes:
            index = [slice(None)] * gy.ndim
            index[axis] = slice(start, start + size)
            grads.append(gy[tuple(index)])
            start += size
        return tuple(grads)


@register
class Identity(Op):
    """y = x: the same values under a new name (PyTorch's ``nn.Identity``, ONNX's Identity)."""

    name = "identity"
    rule = Rule("the same values under a new name; the gradient passes through unchanged",
                "{out} = {x}", {"x": "{∂out}"})

    def forward(self, ctx, x):
        return x

    def backward(self, ctx, gy):
        return (gy,)
