"""Losses: mse, l1, bce, bce_with_logits (element-wise) and cross_entropy, nll (classes).

Every loss returns a scalar (shape ``()``) and has ``reduction``: ``mean`` (default) or ``sum``.

* Element-wise losses compare two tensors of the same shape; ``mean`` averages over all
  elements (as PyTorch does):
      mse  = mean (p - t)^2               l1 = mean |p - t|
      bce  = mean -[t max(ln p, -100) + (1 - t) max(ln(1 - p), -100)]   (PyTorch's BCELoss)
      bce_with_logits = mean softplus(z) - t z   (= bce(sigmoid(z), t), with no clamp at all)
  Gradients flow to both inputs, target included.
* Class losses take scores (..., C), the class axis last, and labels that are either class
  indices (shape (...), integers) or one-hot / probability rows (shape (..., C)).
  ``mean`` averages over the rows (the batch), not over the C classes:
      nll           = mean_n -sum_c t[n, c] * log_probs[n, c]    (-log_probs[n, label[n]])
      cross_entropy = nll(log_softmax(logits))
  Index labels get no gradient (None).  Probability labels get dL/dt = -log_probs (scaled),
  which matters only if a label tensor is computed by the graph (e.g. distillation).
"""
from __future__ import annotations

import math

from ..errors import DataError
from .activation import stable_sigmoid
from .base import Attr, Op, ShapeError, fmt_shape, get_array_module, register, same_dim, Rule
from .probability import log_softmax

LOG_FLOOR = -100.0  # bce clamps ln p and ln(1 - p) here, as PyTorch does
GRAD_EPS = 1e-12    # ... and divides its gradient by max(p (1 - p), GRAD_EPS)

REDUCTION = Attr("str", "mean", "combine the per-element losses by their mean or their sum",
                 choices=("mean", "sum"))


def same_shapes(a, b) -> bool:
    """Whether two (possibly symbolic) shapes can be equal."""
    return len(a) == len(b) and all(same_dim(x, y) for x, y in zip(a, b))


# ==== element-wise losses =========================================================================

class ElementLoss(Op):
    """Base: loss = reduce(f(a, b)) over all elements; subclasses give f and its derivatives."""

    inputs = ("pred", "target")
    attrs = {"reduction": REDUCTION}

    def infer(self, a, b):
        if not same_shapes(a, b):
            raise ShapeError(f"{self.name}: {self.inputs[0]} {fmt_shape(a)} and "
                             f"{self.inputs[1]} {fmt_shape(b)} must have the same shape")
        return ()

    def forward(self, ctx, a, b):
        xp = get_array_module(a)
        if a.shape != b.shape:  # no silent broadcasting of (N, 1) against (N,)
            self.infer(a.shape, b.shape)
        if b.dtype.kind != "f":
            b = b.astype(a.dtype)  # integer targets (0/1) count as the prediction's dtype
        losses, saved = self.losses(a, b)
        scale = 1 / losses.size if self.reduction == "mean" else 1.0
        ctx.save(scale, *saved)
        return xp.asarray(losses.sum() * scale)

    def backward(self, ctx, gy):
        scale, *saved = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        da, db = self.local_grads(need_a, need_b, *saved)
        k = gy * scale  # dL/d(loss_i), the same for every element
        return (k * da if da is not None else None,
                k * db if db is not None else None)

    def losses(self, a, b):
        """(per-element losses, what local_grads needs)."""
        raise NotImplementedError

    def local_grads(self, need_a, need_b, *saved):
        """(d loss_i / d a_i, d loss_i / d b_i); None for what is not needed."""
        raise NotImplementedError


@register
class MSE(ElementLoss):
    """Mean squared error (p - t)^2; d/dp = 2 (p - t), d/dt = -2 (p - t)."""

    name = "mse"
    rule = Rule("the mean squared error; n is the number of elements (1 with reduction sum)",
                "{out} = (1/n) Σ ({pred} − {target})²",
                {"pred": "2 ({pred} − {target}) / n ⊙ {∂out}",
                 "target": "−2 ({pred} − {target}) / n ⊙ {∂out}"})

    def losses(self, pred, target):
        d = pred - target
        return d * d, (d,)

    def local_grads(self, need_p, need_t, d):
        return (2 * d if need_p else None), (-2 * d if need_t else None)


@register
class L1(ElementLoss):
    """Mean absolute error |p - t|; d/dp = sign(p - t) (0 where p = t), d/dt = -sign(p - t)."""

    name = "l1"
    rule = Rule("the mean absolute error; n is the number of elements (1 with reduction sum)",
                "{out} = (1/n) Σ |{pred} − {target}|",
                {"pred": "sign({pred} − {target}) / n ⊙ {∂out}",
                 "target": "−sign({pred} − {target}) / n ⊙ {∂out}"})

    def losses(self, pred, target):
        xp = get_array_module(pred)
        d = pred - target
        return xp.abs(d), (xp.sign(d),)

    def local_grads(self, need_p, need_t, s):
        return (s if need_p else None), (-s if need_t else None)


@register
class BCE(ElementLoss):
    """Binary cross-entropy of probabilities: -[t ln p + (1 - t) ln(1 - p)], as PyTorch's BCELoss.

    Like PyTorch, each log is clamped at -100 (so p = 0 or 1 costs at most 100, never inf),
    and the gradient divides by max(p (1 - p), 1e-12) instead of p (1 - p):
    d/dp = (p - t) / max(p (1 - p), 1e-12),  d/dt = ln(1 - p) - ln p.
    After a sigmoid, dL/dz = (p - t) exactly while p (1 - p) > 1e-12 (|z| < 27.6 in float64);
    further out, and wherever float32 rounds p to 0 or 1, the gradient fades.  A model that
    must learn from confidently wrong predictions uses ``bce_with_logits`` on the logits.
    """

    name = "bce"
    inputs = ("prob", "target")
    rule = Rule("binary cross-entropy of probabilities (ln clamped at −100); n is the number of"
                " elements",
                "{out} = −(1/n) Σ [{target} ln {prob} + (1 − {target}) ln(1 − {prob})]",
                {"prob": "({prob} − {target}) / ({prob} (1 − {prob})) / n ⊙ {∂out}",
                 "target": "(ln(1 − {prob}) − ln {prob}) / n ⊙ {∂out}"})

    def losses(self, prob, target):
        xp = get_array_module(prob)
        log_p = xp.maximum(xp.log(prob), LOG_FLOOR)
        log_q = xp.maximum(xp.log1p(-prob), LOG_FLOOR)  # ln(1 - p)
        return (target - 1) * log_q - target * log_p, (prob, target)

    def local_grads(self, need_p, need_t, p, t):
        xp = get_array_module(p)
        dp = (p - t) / xp.maximum((1 - p) * p, GRAD_EPS) if need_p else None
        dt = xp.log1p(-p) - xp.log(p) if need_t else None
        return dp, dt


@register
class BCEWithLogits(ElementLoss):
    """Binary cross-entropy of logits, stable: max(z, 0) - t z + ln(1 + e^-|z|).

    Equals bce(sigmoid(z), t) with no clipping; d/dz = sigmoid(z) - t, d/dt = -z.
    """

    name = "bce_with_logits"
    inputs = ("logits", "target")
    rule = Rule("binary cross-entropy of logits: bce(σ(z), t) without overflow; n is the number"
                " of elements",
                "{out} = (1/n) Σ [softplus({logits}) − {target} ⊙ {logits}]",
                {"logits": "(σ({logits}) − {target}) / n ⊙ {∂out}",
                 "target": "−{logits} / n ⊙ {∂out}"})

    def losses(self, z, target):
        xp = get_array_module(z)
        return xp.maximum(z, 0) - target * z + xp.log1p(xp.exp(-xp.abs(z))), (z, target)

    def local_grads(self, need_z, need_t, z, t):
        return (stable_sigmoid(z) - t if need_z else None), (-z if need_t else None)


# ==== class losses ================================================================================

def class_indices(op, labels, scores):
    """Index labels as integers (rows,), checked against the class count; None for one-hot."""
    if labels.shape == scores.shape:
        return None
    if labels.shape != scores.shape[:-1]:
        raise ShapeError(f"{op}: labels {fmt_shape(labels.shape)} must be class indices of "
                         f"shape {fmt_shape(scores.shape[:-1])} or one-hot rows of shape "
                         f"{fmt_shape(scores.shape)}")
    index = labels if labels.ndim == 1 else labels.reshape(-1)
    if index.dtype.kind not in "iu":  # float labels such as 3.0 from a CSV file
        as_int = index.astype(get_array_module(scores).int64)
        if not bool((as_int == index).all()):
            raise DataError(f"{op}: class labels must be whole numbers")
        index = as_int
    n_classes = scores.shape[-1]
    # One reduction checks both ends: seen as unsigned integers of the same size (type code
    # "l" -> "L", "i" -> "I", ...), negative labels are huge numbers.
    if index.size and int(index.view(index.dtype.char.upper()).max()) >= n_classes:
        raise DataError(f"{op}: class labels must lie in 0..{n_classes - 1}, got values "
                        f"from {int(index.min())} to {int(index.max())}")
    return index


class ClassLoss(Op):
    """Base: nll of log-probabilities that ``log_probs`` makes from the first input."""

    attrs = {"reduction": REDUCTION}
    integer_inputs = (1,)  # labels may be class indices

    def infer(self, scores, labels):
        name = self.inputs[0]
        if len(scores) == 0:
            raise ShapeError(f"{self.name}: {name} needs a class axis, got shape ()")
        if not (same_shapes(labels, scores) or same_shapes(labels, scores[:-1])):
            raise ShapeError(f"{self.name}: labels {fmt_shape(labels)} must be class indices "
                             f"of shape {fmt_shape(scores[:-1])} or one-hot rows of shape "
                             f"{fmt_shape(scores)} ({name} {fmt_shape(scores)})")
        return ()

    def log_probs(self, scores):
        """The log-probabilities the loss reads (nll: the input itself)."""
        return scores

    def log_probs_grad(self, logp, g):
        """dL/d(scores) from dL/d(log_probs) (nll: the same)."""
        return g

    def forward(self, ctx, scores, labels):
        xp = get_array_module(scores)
        index = class_indices(self.name, labels, scores)
        if index is None and labels.dtype != scores.dtype:
            labels = labels.astype(scores.dtype)  # integer one-hot rows
        logp = self.log_probs(scores)
        n_classes = scores.shape[-1]
        rows = math.prod(scores.shape[:-1])
        if index is not None:  # -log p of the right class, row by row
            total = -logp.reshape(rows, n_classes)[xp.arange(rows), index].sum()
        else:
            total = -(labels * logp).sum()
        scale = 1 / rows if self.reduction == "mean" else 1.0
        ctx.save(logp, labels if index is None else None, index, scale)
        return xp.asarray(total * scale)

    def backward(self, ctx, gy):
        logp, labels, index, scale = ctx.saved
        xp = get_array_module(logp)
        need_scores, need_labels = ctx.needs_input_grad
        k = gy * scale
        d_scores = d_labels = None
        if need_scores:
            if index is not None:  # dL/dlogp is -k at each row's label, 0 elsewhere
                n_classes = logp.shape[-1]
                g = xp.zeros((index.size, n_classes), dtype=logp.dtype)
                g[xp.arange(index.size), index] = -k
                g = g.reshape(logp.shape)
            else:
                g = -k * labels
            d_scores = self.log_probs_grad(logp, g)
        if index is None and need_labels:
            d_labels = -k * logp
        return d_scores, d_labels


@register
class NLL(ClassLoss):
    """Negative log-likelihood of log-probabilities: mean over rows of -log_probs[label]."""

    name = "nll"
    inputs = ("log_probs", "labels")
    rule = Rule("the negative log-likelihood: minus the log-probability of each row's label, "
                "averaged over the N rows",
                "{out} = −(1/N) Σₙ {log_probs}[n, {labels}ₙ]",
                {"log_probs": "−onehot({labels}) / N ⊙ {∂out}"})


@register
class CrossEntropy(ClassLoss):
    """Softmax cross-entropy of logits: nll(log_softmax(logits)), computed stably.

    d/dlogits = (softmax(logits) * sum_c t_c - t) * k, i.e. (softmax - one_hot) / N for "mean".
    """

    name = "cross_entropy"
    inputs = ("logits", "labels")
    rule = Rule("softmax then negative log-likelihood, averaged over the N rows; the gradient "
                "is the predicted probabilities minus the one-hot labels",
                "{out} = −(1/N) Σₙ ln softmax({logits})[n, {labels}ₙ]",
                {"logits": "(softmax({logits}) − onehot({labels})) / N ⊙ {∂out}"})

    def log_probs(self, logits):
        return log_softmax(logits, axis=-1)

    def log_probs_grad(self, logp, g):
        xp = get_array_module(logp)
        return g - xp.exp(logp) * g.sum(axis=-1, keepdims=True)
