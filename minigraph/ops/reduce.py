"""Reductions: sum, mean, max over some axes (``axis: null`` = all of them).

Backward spreads the output gradient back over the reduced axes:

* sum:  dL/dx = dL/dy, copied along the reduced axes;
* mean: dL/dx = dL/dy / n, with n the number of values averaged;
* max:  dL/dx = dL/dy where x equals the maximum, 0 elsewhere; when several values tie for
  the maximum, the gradient is split equally among them (as PyTorch's ``amax`` does), so the
  gradients still add up to dL/dy.
"""
from __future__ import annotations

import math

from .base import Attr, Op, get_array_module, norm_axis, register, Rule

REDUCE_ATTRS = {
    "axis": Attr("axis", None, "axis or list of axes to reduce; null = all"),
    "keepdims": Attr("bool", False, "keep the reduced axes with size 1"),
}


def kept_shape(shape, axes):
    """``shape`` with the reduced ``axes`` set to 1 (the keepdims shape)."""
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


class Reduce(Op):
    """Base of the reductions: the shared attributes and shape rule."""

    attrs = REDUCE_ATTRS

    def infer(self, x):
        axes = norm_axis(self.axis, len(x))
        if self.keepdims:
            return kept_shape(x, axes)
        return tuple(d for i, d in enumerate(x) if i not in axes)

    def spread(self, gy, shape, axes):
        """gy (of the reduced shape) repeated along ``axes`` to ``shape``, as a fresh array."""
        xp = get_array_module(gy)
        return xp.broadcast_to(gy.reshape(kept_shape(shape, axes)), shape).copy()


@register
class Sum(Reduce):
    """y = sum of x over ``axis``."""

    name = "sum"
    rule = Rule("adds up values over the chosen axes; the gradient is copied back to every "
                "value that was added",
                "{out} = Σ {x}",
                {"x": "{∂out} copied to {x.shape}"})

    def forward(self, ctx, x):
        xp = get_array_module(x)
        axes = norm_axis(self.axis, x.ndim)
        ctx.save(x.shape, axes)
        return xp.asarray(x.sum(axis=axes, keepdims=self.keepdims))

    def backward(self, ctx, gy):
        shape, axes = ctx.saved
        return (self.spread(gy, shape, axes),)


@register
class Mean(Reduce):
    """y = (1/n) * sum of x over ``axis``, n = number of values averaged."""

    name = "mean"
    rule = Rule("averages over the chosen axes; the gradient is copied back divided by the "
                "count n",
                "{out} = (1/n) Σ {x}",
                {"x": "{∂out} / n copied to {x.shape}"})

    def forward(self, ctx, x):
        xp = get_array_module(x)
        axes = norm_axis(self.axis, x.ndim)
        ctx.save(x.shape, axes)
        return xp.asarray(x.mean(axis=axes, keepdims=self.keepdims))

    def backward(self, ctx, gy):
        shape, axes = ctx.saved
        n = math.prod(shape[a] for a in axes)
        return (self.spread(gy, shape, axes) / n,)


@register
class Max(Reduce):
    """y = max of x over ``axis``; ties share the gradient equally."""

    name = "max"
    rule = Rule("the largest value over the chosen axes; only the maximum gets the gradient "
                "(ties share it)",
                "{out} = max {x}",
                {"x": "{∂out} where {x} is the maximum, 0 elsewhere"})

    def forward(self, ctx, x):
        xp = get_array_module(x)
        axes = norm_axis(self.axis, x.ndim)
        y = x.max(axis=axes, keepdims=True)
        ctx.save(x == y, axes)  # where the maxima are
        return xp.asarray(y if self.keepdims else y.reshape(self.infer(x.shape)))

    def backward(self, ctx, gy):
        is_max, axes = ctx.saved
        ties = is_max.sum(axis=axes, keepdims=True)  # how many values share each maximum
        g = gy.reshape(kept_shape(is_max.shape, axes)) / ties.astype(gy.dtype)
        return (is_max * g,)
