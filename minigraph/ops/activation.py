"""Activations: element-wise non-linearities and their derivatives.

| op         | y = f(x)                         | f'(x)                          |
| ---------- | -------------------------------- | ------------------------------ |
| sigmoid    | 1 / (1 + e^-x)                   | y (1 - y)                      |
| tanh       | tanh x                           | 1 - y^2                        |
| relu       | max(x, 0)                        | 1 if x > 0 else 0              |
| leaky_relu | x if x > 0 else alpha x          | 1 if x > 0 else alpha          |
| elu        | x if x > 0 else alpha (e^x - 1)  | 1 if x > 0 else alpha e^x      |
| softplus   | ln(1 + e^x)                      | sigmoid(x)                     |
| swish      | x sigmoid(beta x)                | s + beta y (1 - s), s = sigmoid(beta x) |
| sign       | -1, 0 or 1                       | none (not differentiable)      |

At the kink x = 0 the piecewise ops use the x <= 0 branch.
"""
from __future__ import annotations

from .base import Attr, Op, get_array_module, register, Rule


def stable_sigmoid(x):
    """1 / (1 + e^-x) without overflow, as exp(-softplus(-x)) = exp(-ln(1 + e^-x)).

    ``logaddexp(0, -x)`` = ln(e^0 + e^-x) never overflows, and tiny results keep their
    digits (sigmoid(-20) = 2.06e-9, not 0).
    """
    xp = get_array_module(x)
    return xp.asarray(xp.exp(-xp.logaddexp(0, -x)))


@register
class Sigmoid(Op):
    """Logistic sigmoid 1 / (1 + e^-x), computed without overflow."""

    name = "sigmoid"
    rule = Rule("squashes each value into (0, 1); its slope y(1 − y) is at most 1/4, so the "
                "gradient shrinks on the way back",
                "{out} = 1 / (1 + e^(−{x}))",
                {"x": "{∂out} ⊙ {out} ⊙ (1 − {out})"})

    def forward(self, ctx, x):
        y = stable_sigmoid(x)
        ctx.save(y)
        return y

    def backward(self, ctx, gy):
        (y,) = ctx.saved
        return (gy * y * (1 - y),)


@register
class Tanh(Op):
    """Hyperbolic tangent; dy/dx = 1 - y^2."""

    name = "tanh"
    rule = Rule("squashes each value into (−1, 1); the gradient is scaled by the slope 1 − y²",
                "{out} = tanh({x})",
                {"x": "{∂out} ⊙ (1 − {out}²)"})

    def forward(self, ctx, x):
        y = get_array_module(x).tanh(x)
        ctx.save(y)
        return y

    def backward(self, ctx, gy):
        (y,) = ctx.saved
        return (gy * (1 - y * y),)


@register
class ReLU(Op):
    """max(x, 0); gradient 1 where x > 0, else 0."""

    name = "relu"
    rule = Rule("keeps positive values and zeroes the rest; the gradient passes where the input"
                " was positive and stops elsewhere",
                "{out} = max({x}, 0)",
                {"x": "{∂out} ⊙ [{x} > 0]"})

    def forward(self, ctx, x):
        ctx.save(x > 0)
        return get_array_module(x).maximum(x, 0)

    def backward(self, ctx, gy):
        (positive,) = ctx.saved
        return (gy * positive,)


@register
class LeakyReLU(Op):
    """x for x > 0, alpha * x otherwise."""

    name = "leaky_relu"
    rule = Rule("like relu, but negative values keep a small slope alpha, so some gradient "
                "always passes",
                "{out} = {x} if {x} > 0 else {@alpha} {x}",
                {"x": "{∂out} ⊙ (1 if {x} > 0 else {@alpha})"})
    attrs = {"alpha": Attr("float", 0.01, "slope for x <= 0")}

    def forward(self, ctx, x):
        xp = get_array_module(x)
        positive = x > 0
        ctx.save(positive)
        return xp.where(positive, x, x * self.alpha)

    def backward(self, ctx, gy):
        (positive,) = ctx.saved
        xp = get_array_module(gy)
        return (xp.where(positive, gy, gy * self.alpha),)


@register
class ELU(Op):
    """x for x > 0, alpha * (e^x - 1) otherwise; dy/dx = alpha e^x there."""

    name = "elu"
    rule = Rule("identity for positive values, a smooth curve towards −alpha for negative ones",
                "{out} = {x} if {x} > 0 else {@alpha} (e^{x} − 1)",
                {"x": "{∂out} ⊙ (1 if {x} > 0 else {@alpha} e^{x})"})
    attrs = {"alpha": Attr("float", 1.0, "value approached as x -> -inf is -alpha")}

    def forward(self, ctx, x):
        xp = get_array_module(x)
        positive = x > 0
        negative = xp.minimum(x, 0)
        y = xp.where(positive, x, self.alpha * xp.expm1(negative))
        ctx.save(positive, negative)
        return y

    def backward(self, ctx, gy):
        # alpha e^x, not y + alpha: for x << 0, y + alpha = alpha (e^x - 1) + alpha loses
        # every digit of e^x (0 instead of 4e-18 at x = -40).
        positive, negative = ctx.saved
        xp = get_array_module(gy)
        return (xp.where(positive, gy, gy * (self.alpha * xp.exp(negative))),)


@register
class Softplus(Op):
    """ln(1 + e^x), computed as logaddexp(0, x); dy/dx = sigmoid(x)."""

    name = "softplus"
    rule = Rule("a smooth relu; its slope is the sigmoid of the input",
                "{out} = ln(1 + e^{x})",
                {"x": "{∂out} ⊙ σ({x})"})

    def forward(self, ctx, x):
        ctx.save(x)
        return get_array_module(x).logaddexp(0, x)

    def backward(self, ctx, gy):
        (x,) = ctx.saved
        return (gy * stable_sigmoid(x),)


@register
class Swish(Op):
    """x * sigmoid(beta x) (SiLU when beta = 1); dy/dx = s + beta y (1 - s)."""

    name = "swish"
    rule = Rule("the input gated by its own sigmoid",
                "{out} = {x} ⊙ σ({@beta} {x})",
                {"x": "{∂out} ⊙ (s + {@beta} {out} ⊙ (1 − s)),  s = σ({@beta} {x})"})
    attrs = {"beta": Attr("float", 1.0, "sharpness of the gate sigmoid(beta x)")}

    def forward(self, ctx, x):
        s = stable_sigmoid(x * self.beta)
        y = x * s
        ctx.save(s, y)
        return y

    def backward(self, ctx, gy):
        s, y = ctx.saved
        return (gy * (s + self.beta * y * (1 - s)),)


@register
class Sign(Op):
    """-1, 0 or 1; no gradient flows through it (its derivative is 0 almost everywhere)."""

    name = "sign"
    rule = Rule("−1, 0 or 1 by the sign of each value; a step has no useful slope, so no "
                "gradient flows back",
                "{out} = sign({x})",
                {})
    differentiable = False

    def forward(self, ctx, x):
        return get_array_module(x).sign(x)

    def backward(self, ctx, gy):
        return (None,)
