"""Probability ops: softmax and log_softmax along one axis.

Both subtract the maximum first (log-sum-exp trick), so large inputs do not overflow:

    logsumexp(x) = m + ln sum_j e^(x_j - m),   m = max_j x_j
    log_softmax(x)_i = x_i - logsumexp(x),      softmax(x) = e^log_softmax(x)

Gradients (y = softmax, l = log_softmax, g = dL/dy or dL/dl, sums along the axis):

    softmax:     dL/dx = y * (g - sum(g * y))
    log_softmax: dL/dx = g - softmax(x) * sum(g)
"""
from __future__ import annotations

from .base import Attr, Op, get_array_module, norm_axis, register, Rule


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along ``axis``, shifted by the maximum for stability."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class AlongAxis(Op):
    """Base: one ``axis`` attribute; the output has the input's shape."""

    attrs = {"axis": Attr("int", -1, "the axis that holds the classes")}

    def infer(self, x):
        norm_axis(self.axis, len(x))  # raises ShapeError when the axis does not exist
        return x


@register
class Softmax(AlongAxis):
    """y_i = e^(x_i) / sum_j e^(x_j) along ``axis``."""

    name = "softmax"
    rule = Rule("turns scores into probabilities that sum to 1 along the class axis",
                "{out}ᵢ = e^{x}ᵢ / Σⱼ e^{x}ⱼ",
                {"x": "{out} ⊙ ({∂out} − Σ {∂out} ⊙ {out})"})

    def forward(self, ctx, x):
        y = get_array_module(x).exp(log_softmax(x, self.axis))
        ctx.save(y)
        return y

    def backward(self, ctx, gy):
        (y,) = ctx.saved
        return (y * (gy - (gy * y).sum(axis=self.axis, keepdims=True)),)


@register
class LogSoftmax(AlongAxis):
    """y_i = x_i - ln sum_j e^(x_j) along ``axis``."""

    name = "log_softmax"
    rule = Rule("the logarithm of softmax, computed stably",
                "{out} = {x} − ln Σⱼ e^{x}ⱼ",
                {"x": "{∂out} − softmax({x}) ⊙ Σ {∂out}"})

    def forward(self, ctx, x):
        y = log_softmax(x, self.axis)
        ctx.save(y)
        return y

    def backward(self, ctx, gy):
        (y,) = ctx.saved
        xp = get_array_module(y)
        return (gy - xp.exp(y) * gy.sum(axis=self.axis, keepdims=True),)
