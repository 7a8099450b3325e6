"""Fused ops: two primitive ops computed as one, for training plans.

These are not part of the model-file vocabulary (they are not registered): the planner in
:mod:`minigraph.engine` swaps a matching pair of primitive nodes for one fused step when the
tensor between them is read by nothing else and nobody asked for its gradient.  The readable
per-op rules stay the source of truth; tests check each fusion against the unfused pair.

| pattern              | fused op        | why it pays                                        |
| -------------------- | --------------- | -------------------------------------------------- |
| matmul -> add (bias) | LinearFused     | adds the bias in place; db = column sums, no        |
|                      |                 | unbroadcast; one op call instead of two             |
| sigmoid -> bce       | SigmoidBCE      | dL/dz = (y - t) / N: no division by y (1 - y)       |
| log_softmax -> nll   | LogSoftmaxNLL   | dL/dx = (softmax - one_hot) / N in one step         |
"""
from __future__ import annotations

from .activation import stable_sigmoid
from .base import Op, get_array_module
from .loss import CrossEntropy


class LinearFused(Op):
    """y = x W + b for x (N, in), W (in, out), b (out,)."""

    name = "linear(fused)"
    inputs = ("x", "W", "b")

    def forward(self, ctx, x, w, b):
        ctx.save(x, w)
        y = x @ w
        y += b
        return y

    def backward(self, ctx, gy):
        x, w = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad
        return (gy @ w.T if need_x else None,
                x.T @ gy if need_w else None,
                gy.sum(axis=0) if need_b else None)


class SigmoidBCE(Op):
    """(y, L) = (sigmoid(z), bce(sigmoid(z), t)); outputs the probabilities and the loss.

    L uses ln y = -softplus(-z) and ln(1 - y) = -softplus(z) with the unfused op's clip
    (probabilities kept in [1e-7, 1 - 1e-7]), so the value matches ``bce`` exactly there.
    """

    name = "sigmoid+bce(fused)"
    inputs = ("z", "target")

    def __init__(self, reduction="mean"):
        self.reduction = reduction

    def forward(self, ctx, z, t):
        xp = get_array_module(z)
        if t.dtype != z.dtype:
            t = t.astype(z.dtype)
        y = stable_sigmoid(z)
        p = xp.clip(y, 1e-7, 1 - 1e-7)
        total = -(t * xp.log(p) + (1 - t) * xp.log(1 - p)).sum()
        scale = 1 / y.size if self.reduction == "mean" else 1.0
        ctx.save(y, t, scale)
        return y, xp.asarray(total * scale)

    def backward(self, ctx, gy):
        y, t, scale = ctx.saved
        need_z, need_t = ctx.needs_input_grad
        dz = (y - t) * (gy * scale) if need_z else None
        return dz, None


class LogSoftmaxNLL(Op):
    """(log_probs, L) = (log_softmax(x), nll(log_softmax(x), labels)), as cross_entropy."""

    name = "log_softmax+nll(fused)"
    inputs = ("x", "labels")

    def __init__(self, reduction="mean"):
        self.loss = CrossEntropy(reduction=reduction)

    def forward(self, ctx, x, labels):
        loss = self.loss.forward(ctx, x, labels)
        return ctx.saved[0], loss  # cross_entropy saved log_softmax(x) first

    def backward(self, ctx, gy):
        return self.loss.backward(ctx, gy)


def _bias_of(graph, first, second, t):
    """matmul -> add fuses when the add reads (t, b) with b a vector over t's last axis."""
    if len(second.inputs) != 2 or second.inputs[0] != t:
        return False
    x_shape, w_shape = (graph.tensors[n].shape for n in first.inputs)
    b_shape = graph.tensors[second.inputs[1]].shape
    return (len(x_shape) == 2 and len(w_shape) == 2 and len(b_shape) == 1
            and b_shape[0] == w_shape[1] and second.inputs[1] != t)


def _first_input(graph, first, second, t):
    return second.inputs[0] == t and t not in second.inputs[1:]


def _classes_last(graph, first, second, t):
    rank = len(graph.tensors[t].shape)
    return _first_input(graph, first, second, t) and first.op.axis in (-1, rank - 1)


# (first op, second op, make the fused op from the second node's op, whether the fused op
#  also outputs the intermediate tensor, extra condition)
FUSIONS = (
    ("matmul", "add", lambda op: LinearFused(), False, _bias_of),
    ("sigmoid", "bce", lambda op: SigmoidBCE(op.reduction), True, _first_input),
    ("log_softmax", "nll", lambda op: LogSoftmaxNLL(op.reduction), True, _classes_last),
)
