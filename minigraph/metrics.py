"""Metrics computed from predictions and targets (host NumPy arrays)."""
from __future__ import annotations

import numpy as np

from .errors import did_you_mean
from .limits import short


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
        return float(np.mean(pred.argmax(-1) == labels))
    signed = target.min() < 0
    if threshold is None:
        threshold = 0.0 if signed else 0.5
    got = pred.reshape(target.shape) > threshold
    want = target > (0.0 if signed else 0.5)
    return float(np.mean(got == want))


def mse(pred, target) -> float:
    """Mean squared error."""
    d = np.asarray(pred, np.float64).reshape(np.shape(target)) - target
    return float(np.mean(d * d))


def mae(pred, target) -> float:
    """Mean absolute error."""
    d = np.asarray(pred, np.float64).reshape(np.shape(target)) - target
    return float(np.mean(np.abs(d)))


METRICS = {"accuracy": accuracy, "mse": mse, "mae": mae}


def check_metrics(names) -> str | None:
    """An error message for the first unknown metric name, or None."""
    for name in names:
        if not isinstance(name, str):
            return f"a metric is a name such as 'accuracy', got {short(name)}"
        if name not in METRICS:
            return (f"unknown metric {short(name)}{did_you_mean(name, METRICS)}; "
                    f"choose from {', '.join(METRICS)}")
    return None
