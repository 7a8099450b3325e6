"""Metrics computed from predictions and targets (host NumPy arrays)."""
from __future__ import annotations

import numpy as np

from .limits import short
from .options import OptionError
from .registry import Registry

METRICS = Registry("metric")  # @METRICS.register("name") makes a function usable in train.metrics


@METRICS.register("accuracy")
def accuracy(pred, target, threshold=None) -> float:
    """Fraction of correct predictions.

    Several classes (last dimension > 1): argmax of ``pred`` against class indices or the
    argmax of one-hot targets.  One output: the class is ``pred > threshold`` (0.5 for 0/1
    targets, 0 for -1/+1 targets as in the perceptron).
    """
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.ndim >= 2 and pred.shape[-1] > 1:
        labels = target if target.ndim == pred.ndim - 1 else target.argmax(-1)
        return _fraction(pred.argmax(-1) == labels)
    signed = target.min() < 0
    if threshold is None:
        threshold = 0.0 if signed else 0.5
    got = pred.reshape(target.shape) > threshold
    want = target > (0.0 if signed else 0.5)
    return _fraction(got == want)


def _fraction(hits) -> float:
    """The fraction of true entries (``np.mean`` of booleans, without its overhead)."""
    return np.count_nonzero(hits) / max(hits.size, 1)


@METRICS.register("mse")
def mse(pred, target) -> float:
    """Mean squared error."""
    d = np.asarray(pred, np.float64).reshape(np.shape(target)) - target
    return float(np.mean(d * d))


@METRICS.register("mae")
def mae(pred, target) -> float:
    """Mean absolute error."""
    d = np.asarray(pred, np.float64).reshape(np.shape(target)) - target
    return float(np.mean(np.abs(d)))


def check_metrics(names, key: str | None = None) -> list:
    """``names`` as a list, each a registered metric; an :class:`OptionError` (with ``key``)
    for the first that is not."""
    for name in names:
        if not isinstance(name, str):
            raise OptionError(f"a metric is a name such as 'accuracy', got {short(name)}", key)
        METRICS.lookup(name, lambda message: OptionError(message, key))
    return list(names)
