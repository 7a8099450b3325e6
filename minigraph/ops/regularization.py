"""Regularization: dropout.

Inverted dropout: while training, each value is kept with probability 1 - p and scaled by
1 / (1 - p), so the expected output equals the input and evaluation needs no rescaling:

    y = x * m / (1 - p),   m ~ Bernoulli(1 - p) per element,   dL/dx = dL/dy * m / (1 - p)

Outside training (``ctx.training`` false) dropout is the identity.  The mask comes from the
run's generator ``ctx.rng`` (``rng.random(shape) >= p``), so a seeded run is reproducible.
"""
from __future__ import annotations

from .base import Attr, AttrError, Op, register, Rule


@register
class Dropout(Op):
    """Zero each value with probability p while training (scaling the rest by 1/(1-p))."""

    name = "dropout"
    rule = Rule("while training, zeroes each value with probability p and scales the rest by "
                "1/(1 − p); the gradient takes the same mask",
                "{out} = {x} ⊙ mask / (1 − {@p})",
                {"x": "{∂out} ⊙ mask / (1 − {@p})"})
    attrs = {"p": Attr("float", 0.5, "probability of dropping a value, 0 <= p < 1")}

    def __init__(self, **attrs):
        super().__init__(**attrs)
        if not 0 <= self.p < 1:
            raise AttrError(f"dropout: p must be in [0, 1), got {self.p}")

    def forward(self, ctx, x):
        if not ctx.training or self.p == 0:
            ctx.save(None)
            return x
        if ctx.rng is None:
            raise RuntimeError("dropout needs a random generator (ctx.rng) while training")
        keep = ctx.rng.random(x.shape) >= self.p
        scale = keep.astype(x.dtype) / (1 - self.p)  # the mask and the rescaling in one array
        ctx.save(scale)
        return x * scale

    def backward(self, ctx, gy):
        (scale,) = ctx.saved
        return (gy if scale is None else gy * scale,)
