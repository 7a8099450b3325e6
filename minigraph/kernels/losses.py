"""cross_entropy with class indices, the way a hand-written training step computes it.

A faster implementation of the registered ``cross_entropy`` op (as ONNX keeps optimized
implementations apart from its reference ops), picked by the training plan.  With s the
logits shifted by their row maximum:

    loss_n = ln sum_c e^(s_nc) - s_n,label          dL/dlogits = (e^s / sum - one_hot) k

Forward keeps e^s and its row sums, so backward forms softmax - one_hot in one array
without a log_softmax or a second exp.  One-hot labels take the plain op's path.
"""
from __future__ import annotations

from typing import NamedTuple

from ..ops.base import get_array_module
from ..ops.loss import CrossEntropy, class_indices


class _SoftmaxRows(NamedTuple):
    """What cross_entropy with class indices keeps for backward."""

    exps: object    # e^(logits - row max), (rows, classes)
    sums: object    # its row sums, (rows, 1)
    picks: object   # 0, 1, ..., rows - 1: with index, where each row's label is
    index: object   # the labels, (rows,)
    scale: float    # 1 / rows for "mean", 1 for "sum"
    shape: tuple    # the logits' shape


class CrossEntropyRows(CrossEntropy):
    """cross_entropy(logits, labels) for class-index labels; equal to the plain op."""

    name = "cross_entropy(rows)"

    def __init__(self, plain: CrossEntropy):
        super().__init__(**plain.attr_values())

    def forward(self, ctx, logits, labels, weight=None):
        index = class_indices(self.name, labels, logits, self.ignore_index)
        if index is None or weight is not None or self.ignore_index is not None \
                or self.reduction == "none":  # the plain rule
            return super().forward(ctx, logits, labels, weight)
        xp = get_array_module(logits)
        rows = index.size
        z = logits if logits.ndim == 2 else logits.reshape(rows, logits.shape[-1])
        shifted = z - z.max(axis=1, keepdims=True)
        exps = xp.exp(shifted)
        sums = exps.sum(axis=1, keepdims=True)
        picks = xp.arange(rows)
        scale = 1 / rows if self.reduction == "mean" else 1.0
        ctx.saved = _SoftmaxRows(exps, sums, picks, index, scale, logits.shape)
        return xp.asarray((xp.log(sums).sum() - shifted[picks, index].sum()) * scale)

    def backward(self, ctx, gy):
        saved = ctx.saved
        if not isinstance(saved, _SoftmaxRows):  # one-hot rows
            return super().backward(ctx, gy)
        if not ctx.needs_input_grad[0]:
            return None, None  # index labels get no gradient either
        probs = saved.exps / saved.sums  # softmax - one_hot, times k, in one array
        probs[saved.picks, saved.index] -= 1
        probs *= gy * saved.scale
        return (probs if probs.shape == saved.shape else probs.reshape(saved.shape)), None
