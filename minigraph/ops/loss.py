"""Losses: mse, l1, bce, bce_with_logits (element-wise) and cross_entropy, nll (classes).

Every loss has ``reduction``: ``mean`` (default) or ``sum``, giving a scalar (shape ``()``);
the class losses also take ``none`` (one loss per row), an optional ``weight`` per class and
``ignore_index``, with PyTorch's meaning (see :class:`ClassLoss`).

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

CLASS_ATTRS = {
    "reduction": Attr("str", "mean", "mean: weighted mean over the rows (sum of the losses / "
                      "sum of the rows' weights); sum; none: one loss per row",
                      choices=("mean", "sum", "none")),
    "ignore_index": Attr("int", None, "a class index whose rows count for nothing (no loss, "
                         "no weight, no gradient), as PyTorch's ignore_index"),
}


def class_indices(op, labels, scores, ignore_index=None):
    """Index labels as integers (rows,), checked against the class count; None for one-hot.

    Labels equal to ``ignore_index`` are not checked (they may lie outside 0..C-1).
    """
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
    checked = index if ignore_index is None else index[index != ignore_index]
    n_classes = scores.shape[-1]
    # One reduction checks both ends: seen as unsigned integers of the same size (type code
    # "l" -> "L", "i" -> "I", ...), negative labels are huge numbers.
    if checked.size and int(checked.view(checked.dtype.char.upper()).max()) >= n_classes:
        raise DataError(f"{op}: class labels must lie in 0..{n_classes - 1}, got values "
                        f"from {int(checked.min())} to {int(checked.max())}")
    return index


class ClassLoss(Op):
    """Base: nll of log-probabilities that ``log_probs`` makes from the first input.

    Optional ``weight`` (C,): class weights, as PyTorch's ``weight``: row n's loss is
    multiplied by weight[label_n] (index labels) or the row is sum_c weight_c t_nc (-log p_nc)
    (probability labels); ``mean`` then divides by the sum of the rows' weights (index labels)
    or by the number of rows (probability labels).  No gradient flows to ``weight``.
    """

    attrs = CLASS_ATTRS
    integer_inputs = (1,)  # labels may be class indices

    def infer(self, scores, labels, weight=None):
        name = self.inputs[0]
        if len(scores) == 0:
            raise ShapeError(f"{self.name}: {name} needs a class axis, got shape ()")
        if not (same_shapes(labels, scores) or same_shapes(labels, scores[:-1])):
            raise ShapeError(f"{self.name}: labels {fmt_shape(labels)} must be class indices "
                             f"of shape {fmt_shape(scores[:-1])} or one-hot rows of shape "
                             f"{fmt_shape(scores)} ({name} {fmt_shape(scores)})")
        if weight is not None and not same_shapes(weight, scores[-1:]):
            raise ShapeError(f"{self.name}: weight {fmt_shape(weight)} must hold one number "
                             f"per class, shape {fmt_shape(scores[-1:])}")
        if self.reduction == "none":
            return tuple(scores[:-1])
        return ()

    def log_probs(self, scores):
        """The log-probabilities the loss reads (nll: the input itself)."""
        return scores

    def log_probs_grad(self, logp, g):
        """dL/d(scores) from dL/d(log_probs) (nll: the same)."""
        return g

    def row_weights(self, xp, index, weight, dtype):
        """(rows' weights, the labels with ignored ones replaced by 0) for index labels."""
        keep = None if self.ignore_index is None else index != self.ignore_index
        safe = index if keep is None else xp.where(keep, index, 0)
        w = xp.ones(index.shape, dtype=dtype) if weight is None else weight[safe].astype(dtype)
        return (w if keep is None else w * keep), safe

    def forward(self, ctx, scores, labels, weight=None):
        xp = get_array_module(scores)
        index = class_indices(self.name, labels, scores, self.ignore_index)
        logp = self.log_probs(scores)
        n_classes = scores.shape[-1]
        rows = math.prod(scores.shape[:-1])
        flat = logp.reshape(rows, n_classes)
        if index is not None:  # -w_n log p of the right class, row by row
            w, safe = self.row_weights(xp, index, weight, logp.dtype)
            losses = -flat[xp.arange(rows), safe] * w
            plain = weight is None and self.ignore_index is None
            scale = 1 / rows if plain else 1 / w.sum()  # the weighted mean's denominator
            saved_labels = (w, safe)
        else:
            if labels.dtype != scores.dtype:
                labels = labels.astype(scores.dtype)  # integer one-hot rows
            weight = None if weight is None else weight.astype(scores.dtype)
            weighted = labels if weight is None else labels * weight
            losses = -(weighted.reshape(rows, n_classes) * flat).sum(axis=1)
            scale = 1 / rows
            saved_labels = (weighted, weight)
        ctx.save(logp, saved_labels, index is not None,
                 scale if self.reduction == "mean" else 1.0)
        if self.reduction == "none":
            return losses.reshape(scores.shape[:-1])
        return xp.asarray(losses.sum() * scale if self.reduction == "mean" else losses.sum())

    def backward(self, ctx, gy):
        logp, labels, by_index, scale = ctx.saved
        xp = get_array_module(logp)
        need_scores, need_labels = ctx.needs_input_grad[:2]
        k = gy * scale  # dL/d(each row's loss): a scalar, or one per row for "none"
        if self.reduction == "none":
            k = k.reshape(-1) if by_index else k[..., None]
        d_scores = d_labels = None
        if need_scores:
            if by_index:  # dL/dlogp is -k w_n at each row's label, 0 elsewhere
                w, safe = labels
                g = xp.zeros((safe.size, logp.shape[-1]), dtype=logp.dtype)
                g[xp.arange(safe.size), safe] = -k * w
                g = g.reshape(logp.shape)
            else:
                g = -k * labels[0]
            d_scores = self.log_probs_grad(logp, g)
        if not by_index and need_labels:
            weight = labels[1]
            d_labels = -k * (logp if weight is None else logp * weight)
        return (d_scores, d_labels) + (None,) * (len(ctx.needs_input_grad) - 2)


@register
class NLL(ClassLoss):
    """Negative log-likelihood of log-probabilities: mean over rows of -log_probs[label]."""

    name = "nll"
    inputs = ("log_probs", "labels", "weight?")
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
    inputs = ("logits", "labels", "weight?")
    rule = Rule("softmax then negative log-likelihood, averaged over the N rows; the gradient "
                "is the predicted probabilities minus the one-hot labels",
                "{out} = −(1/N) Σₙ ln softmax({logits})[n, {labels}ₙ]",
                {"logits": "(softmax({logits}) − onehot({labels})) / N ⊙ {∂out}"})

    def log_probs(self, logits):
        return log_softmax(logits, axis=-1)

    def log_probs_grad(self, logp, g):
        xp = get_array_module(logp)
        return g - xp.exp(logp) * g.sum(axis=-1, keepdims=True)
