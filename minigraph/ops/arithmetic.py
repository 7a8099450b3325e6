"""Element-wise arithmetic: add, sub, mul, div, pow, maximum; neg, exp, log, sqrt, square, abs.

Binary ops broadcast as NumPy does; their gradients are reduced back to each input's shape by
the shared ``unbroadcast``.
"""
from __future__ import annotations

from .base import Op, broadcast_shapes, get_array_module, register, unbroadcast, Rule


class Binary(Op):
    """Base of broadcasting binary ops: subclasses give ``compute`` and ``local_grads``."""

    inputs = ("a", "b")

    def infer(self, a, b):
        return broadcast_shapes(a, b)

    def forward(self, ctx, a, b):
        ctx.save(a, b)
        return self.compute(a, b)

    def backward(self, ctx, gy):
        a, b = ctx.saved
        da, db = self.local_grads(ctx, a, b, gy)
        return (unbroadcast(da, a.shape) if da is not None else None,
                unbroadcast(db, b.shape) if db is not None else None)

    def compute(self, a, b):
        raise NotImplementedError

    def local_grads(self, ctx, a, b, gy):
        """(dL/da, dL/db) before unbroadcasting; skip what ``ctx.needs_input_grad`` rules out."""
        raise NotImplementedError


@register
class Add(Binary):
    """a + b (broadcasting)."""

    name = "add"
    rule = Rule("adds element by element; the gradient is copied unchanged to both inputs "
                "(summed over any axis that was broadcast, e.g. the batch axis for a bias)",
                "{out} = {a} + {b}",
                {"a": "{∂out}", "b": "{∂out}"})

    def forward(self, ctx, a, b):
        ctx.save(a.shape, b.shape)  # add's gradient needs only the shapes
        return a + b

    def backward(self, ctx, gy):
        sa, sb = ctx.saved
        return unbroadcast(gy, sa), unbroadcast(gy, sb)


@register
class Sub(Binary):
    """a - b (broadcasting)."""

    name = "sub"
    rule = Rule("subtracts; the gradient goes to a unchanged and to b with its sign flipped",
                "{out} = {a} − {b}",
                {"a": "{∂out}", "b": "−{∂out}"})

    def forward(self, ctx, a, b):
        ctx.save(a.shape, b.shape)
        return a - b

    def backward(self, ctx, gy):
        sa, sb = ctx.saved
        return unbroadcast(gy, sa), unbroadcast(-gy, sb)


@register
class Mul(Binary):
    """a * b (broadcasting)."""

    name = "mul"
    rule = Rule("multiplies element by element; each input's gradient is the incoming gradient "
                "times the other input",
                "{out} = {a} ⊙ {b}",
                {"a": "{∂out} ⊙ {b}", "b": "{∂out} ⊙ {a}"})

    def compute(self, a, b):
        return a * b

    def local_grads(self, ctx, a, b, gy):
        need_a, need_b = ctx.needs_input_grad
        return (gy * b if need_a else None), (gy * a if need_b else None)


def truncating_div(a, b):
    """a / b of two integer arrays, rounded toward zero as C, ONNX and PyTorch's
    ``div(rounding_mode="trunc")`` do (NumPy's ``//`` rounds toward -inf).  Division by
    zero gives 0."""
    xp = get_array_module(a, b)
    q = xp.floor_divide(a, xp.where(b == 0, 1, b).astype(b.dtype))
    inexact = (q * b != a) & ((a < 0) != (b < 0)) & (b != 0)
    return xp.where(b == 0, 0, q + inexact).astype(q.dtype)


@register
class Div(Binary):
    """a / b (broadcasting); integers divide with truncation toward zero (7 / -2 = -3).

    As in C and ONNX (NumPy's // would give -4); no gradient flows through integers.
    """

    name = "div"
    rule = Rule("divides element by element",
                "{out} = {a} / {b}",
                {"a": "{∂out} / {b}", "b": "−{∂out} ⊙ {a} / {b}²"})

    def compute(self, a, b):
        if a.dtype.kind in "iu" and b.dtype.kind in "iu":
            return truncating_div(a, b)
        return a / b

    def local_grads(self, ctx, a, b, gy):
        need_a, need_b = ctx.needs_input_grad
        da = gy / b if need_a else None
        db = -gy * (a / b) / b if need_b else None  # not a / b^2: b^2 overflows and underflows
        return da, db


@register
class Pow(Binary):
    """a ** b (broadcasting); dL/da = gy b a^(b-1), dL/db = gy a^b ln a.

    As in PyTorch: where b = 0, dL/da = 0 (a^0 = 1 does not depend on a, even at a = 0,
    where b a^(b-1) would be 0 * inf); where a = 0 and b >= 0, dL/db = 0 (0^b is flat in b,
    where a^b ln a would be 0 * -inf).  For a < 0, ln a and so dL/db are NaN.
    """

    name = "pow"
    rule = Rule("raises a to the power b",
                "{out} = {a}^{b}",
                {"a": "{∂out} ⊙ {b} ⊙ {a}^({b} − 1)", "b": "{∂out} ⊙ {out} ⊙ ln {a}"})

    def forward(self, ctx, a, b):
        if a.dtype.kind == "f" and b.dtype.kind in "iu":
            b = b.astype(a.dtype)  # a float tensor keeps its dtype (PyTorch's promotion)
        y = a ** b
        ctx.save(a, b, y)
        return y

    def backward(self, ctx, gy):
        a, b, y = ctx.saved
        xp = get_array_module(a)
        need_a, need_b = ctx.needs_input_grad
        da = db = None
        if need_a:
            da = unbroadcast(xp.where(b == 0, 0, gy * b * a ** (b - 1)), a.shape)
        if need_b:
            flat = (a == 0) & (b >= 0)
            db = unbroadcast(xp.where(flat, 0, gy * y * xp.log(a)), b.shape)
        return da, db


@register
class Maximum(Binary):
    """The larger of a and b, element by element (broadcasting), as ``torch.maximum``.

    The gradient goes to the larger input; where a = b it is split in half between them (as
    PyTorch does), so the two parts still add up to dL/dy.  (A NaN wins, as in NumPy.)
    """

    name = "maximum"
    rule = Rule("the larger of a and b, element by element; the gradient goes to the larger "
                "one (half to each where they are equal)",
                "{out} = max({a}, {b})",
                {"a": "{∂out} where {a} > {b} (half where equal), 0 elsewhere",
                 "b": "{∂out} where {b} > {a} (half where equal), 0 elsewhere"})

    def compute(self, a, b):
        return get_array_module(a, b).maximum(a, b)

    def local_grads(self, ctx, a, b, gy):
        xp = get_array_module(a, b)
        need_a, need_b = ctx.needs_input_grad
        share = xp.where(a > b, 1.0, xp.where(a == b, 0.5, 0.0)).astype(gy.dtype)
        return (gy * share if need_a else None), (gy * (1 - share) if need_b else None)


# ==== unary =======================================================================================

@register
class Neg(Op):
    """-x."""

    name = "neg"
    rule = Rule("flips the sign; so does the gradient",
                "{out} = −{x}",
                {"x": "−{∂out}"})

    def forward(self, ctx, x):
        return -x

    def backward(self, ctx, gy):
        return (-gy,)


@register
class Exp(Op):
    """e^x."""

    name = "exp"
    rule = Rule("e to the power of each value; its slope is its own value",
                "{out} = e^{x}",
                {"x": "{∂out} ⊙ {out}"})

    def forward(self, ctx, x):
        y = get_array_module(x).exp(x)
        ctx.save(y)
        return y

    def backward(self, ctx, gy):
        (y,) = ctx.saved
        return (gy * y,)


@register
class Log(Op):
    """Natural logarithm ln x."""

    name = "log"
    rule = Rule("the natural logarithm; its slope is 1/x",
                "{out} = ln {x}",
                {"x": "{∂out} / {x}"})

    def forward(self, ctx, x):
        ctx.save(x)
        return get_array_module(x).log(x)

    def backward(self, ctx, gy):
        (x,) = ctx.saved
        return (gy / x,)


@register
class Sqrt(Op):
    """Square root."""

    name = "sqrt"
    rule = Rule("the square root; its slope is 1/(2√x)",
                "{out} = √{x}",
                {"x": "{∂out} / (2 {out})"})

    def forward(self, ctx, x):
        y = get_array_module(x).sqrt(x)
        ctx.save(y)
        return y

    def backward(self, ctx, gy):
        (y,) = ctx.saved
        return (gy / (2 * y),)


@register
class Square(Op):
    """x^2."""

    name = "square"
    rule = Rule("squares each value; its slope is 2x",
                "{out} = {x}²",
                {"x": "2 {x} ⊙ {∂out}"})

    def forward(self, ctx, x):
        ctx.save(x)
        return x * x

    def backward(self, ctx, gy):
        (x,) = ctx.saved
        return (2 * x * gy,)


@register
class Abs(Op):
    """|x|, with gradient sign(x) (0 at 0)."""

    name = "abs"
    rule = Rule("the absolute value; its slope is the sign of the input",
                "{out} = |{x}|",
                {"x": "{∂out} ⊙ sign({x})"})

    def forward(self, ctx, x):
        xp = get_array_module(x)
        ctx.save(x)
        return xp.abs(x)

    def backward(self, ctx, gy):
        (x,) = ctx.saved
        return (gy * get_array_module(x).sign(x),)
