"""Linear algebra: matmul and transpose.

``matmul`` follows NumPy's ``@``: the last two axes are the matrix axes, the leading axes are a
batch that broadcasts, and a 1-D operand is a vector (a row on the left, a column on the right).
A layer weight is ``(in, out)``, so a dense layer is ``H = X W``.
"""
from __future__ import annotations

from .base import (Attr, Op, Rule, ShapeError, broadcast_shapes, fmt_shape, get_array_module,
                   register, same_dim, unbroadcast)


@register
class MatMul(Op):
    """a @ b, NumPy semantics (batched, broadcasting leading axes).

    For Y = A B:  dL/dA = dL/dY B^T  and  dL/dB = A^T dL/dY,
    each summed over the batch axes that its operand was broadcast along.
    """

    name = "matmul"
    inputs = ("a", "b")
    rule = Rule("the matrix product: each output entry is a row of a times a column of b; the "
                "gradient flows back through the transposed other factor",
                "{out} = {a} · {b}",
                {"a": "{∂out} · {b}ᵀ", "b": "{a}ᵀ · {∂out}"})

    def infer(self, a, b):
        if len(a) == 0 or len(b) == 0:
            raise ShapeError(f"matmul needs tensors of rank >= 1, got {fmt_shape(a)} @ "
                             f"{fmt_shape(b)}")
        a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)  # a vector is a row ...
        b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)  # ... or a column
        if not same_dim(a2[-1], b2[-2]):
            raise ShapeError(f"inner dimensions differ: {fmt_shape(a)} @ {fmt_shape(b)}")
        try:
            batch = broadcast_shapes(a2[:-2], b2[:-2])
        except ShapeError:
            raise ShapeError(f"batch dimensions do not broadcast: {fmt_shape(a)} @ "
                             f"{fmt_shape(b)}") from None
        rows = () if len(a) == 1 else (a2[-2],)
        cols = () if len(b) == 1 else (b2[-1],)
        return batch + rows + cols

    def forward(self, ctx, a, b):
        ctx.save(a, b)
        return a @ b

    def backward(self, ctx, gy):
        a, b = ctx.saved
        xp = get_array_module(a)
        need_a, need_b = ctx.needs_input_grad
        # Treat vectors as 1-row / 1-column matrices, so one formula covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            gy = gy[..., None]  # (..., n) -> (..., n, 1)
        if a.ndim == 1:
            gy = gy[..., None, :]  # (..., m) -> (..., 1, m)
        da = db = None
        if need_a:
            da = unbroadcast(gy @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if need_b:
            db = unbroadcast(xp.swapaxes(a2, -1, -2) @ gy, b2.shape).reshape(b.shape)
        return da, db


@register
class Transpose(Op):
    """Permute the axes: y.shape[i] = x.shape[perm[i]]; the gradient applies the inverse perm."""

    name = "transpose"
    rule = Rule("reorders the axes; the gradient is reordered back",
                "{out} = {x}ᵀ",
                {"x": "{∂out}ᵀ  (axes put back)"})
    attrs = {"perm": Attr("ints", None, "new order of the axes; default: reverse them")}

    def _perm(self, ndim):
        """The permutation as non-negative axes, checked against the input's rank."""
        if self.perm is None:
            return tuple(reversed(range(ndim)))
        if len(self.perm) != ndim or any(not -ndim <= p < ndim for p in self.perm):
            raise ShapeError(f"perm {self.perm} does not fit a tensor of rank {ndim}")
        perm = tuple(p % ndim for p in self.perm)
        if sorted(perm) != list(range(ndim)):
            raise ShapeError(f"perm {self.perm} is not a permutation of the axes 0..{ndim - 1}")
        return perm

    def infer(self, x):
        return tuple(x[p] for p in self._perm(len(x)))

    def forward(self, ctx, x):
        perm = self._perm(x.ndim)
        ctx.save(perm)
        return x.transpose(perm)

    def backward(self, ctx, gy):
        (perm,) = ctx.saved
        inverse = [0] * len(perm)
        for i, p in enumerate(perm):  # axis p of x went to position i of y
            inverse[p] = i
        return (gy.transpose(inverse),)
