"""Metrics computed from predictions and targets (host NumPy arrays)."""
from __future__ import annotations

import numpy as np

from .limits import short
from .options import OptionError
from .registry import Registry

METRICS = Registry("metric")  # @METRICS.register("name") makes a function usable in train.metrics


@METRICS.register("accuracy")
def accuracy(pred, target, threshold=None, signed=None) -> float:
    """Fraction of correct predictions.

    Several classes (last dimension > 1): argmax of ``pred`` against class indices or the
    argmax of one-hot targets.  One output: the class is ``pred > threshold``, and the targets
    are 0/1 (class 1 above 0.5) or, ``signed``, -1/+1 (class +1 above 0, as in the
    perceptron).  ``signed`` defaults to whether any target is negative (a trainer decides it
    once, from its training targets), ``threshold`` to the targets' middle: 0.5, or 0 signed.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if signed is None and not _several(pred):
        signed = bool(target.min() < 0)
    return Accuracy(threshold, bool(signed))(pred, target)


class Accuracy:
    """:func:`accuracy` with its threshold and the targets' convention fixed, as a trainer
    computes it every epoch: ``Accuracy(threshold, signed)(pred, target)``.

    It keeps the classes of the last targets it was given: the targets of an epoch of one
    batch are the same array every epoch, so their classes are found once.
    """

    def __init__(self, threshold=None, signed: bool = False):
        self.middle = 0.0 if signed else 0.5  # a target above it is class 1 (or +1)
        self.threshold = self.middle if threshold is None else threshold
        self.target = self.classes = None  # the last targets, and their classes
        self.count = 1  # how many (at least 1)
        self.cut = None  # the threshold as a 0-d array of the predictions' dtype

    def __call__(self, pred, target) -> float:
        pred = np.asarray(pred)
        several = pred.ndim >= 2 and pred.shape[-1] > 1
        if target is not self.target:
            self.target, target = target, np.asarray(target)
            if not several:
                self.classes = target > self.middle
            else:  # class indices, or one-hot rows
                self.classes = target if target.ndim == pred.ndim - 1 else target.argmax(-1)
            self.count = max(self.classes.size, 1)
        if several:
            got = pred.argmax(-1)
        else:
            if pred.shape != self.classes.shape:  # (n,) against (n, 1)
                pred = pred.reshape(self.classes.shape)
            got = pred > self._cut(pred.dtype)
        return np.count_nonzero(got == self.classes) / self.count

    def _cut(self, dtype):
        """The threshold to compare predictions of ``dtype`` with: for floats, a 0-d array of
        that dtype, which is what NumPy turns a Python float into there (made once: it is
        quicker to compare with); for others, the Python number."""
        if dtype.kind != "f":
            return self.threshold
        if self.cut is None or self.cut.dtype != dtype:
            self.cut = np.asarray(self.threshold, dtype)
        return self.cut


def _several(pred) -> bool:
    """Whether ``pred`` scores several classes (its last dimension)."""
    return pred.ndim >= 2 and pred.shape[-1] > 1


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
