"""The kinds of value a data option takes, as ``Option(convert=...)`` functions.

Each takes the value written in the file and returns it converted, or raises ValueError with
the words that finish the sentence "data.train.OPTION ..." (``must be at least 1, not 0``).
They exist beside ``minigraph.options.KIND_CHECKS`` because data options read a number written
as a string (PyYAML reads ``1e-3`` as one) and keep the wording they have always had.
"""
from __future__ import annotations

import math

from .. import limits
from ..errors import did_you_mean
from ..limits import short


def real(value):
    """A finite number.  (PyYAML reads ``1e-3`` as a string, so numeric strings are accepted.)"""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {short(value)}")
    if isinstance(value, str):
        try:
            number = float(value) if len(value) <= 100 else None
        except ValueError:
            number = None
        if number is None:
            raise ValueError(f"must be a number, not {short(value)}")
        value = number
    if isinstance(value, int):
        try:
            value = float(value)
        except OverflowError:
            raise ValueError(f"must be a finite number, not {short(value)}") from None
    if not isinstance(value, float) or not math.isfinite(value):
        raise ValueError(f"must be a finite number, not {short(value)}")
    return value


def moderate(value):
    """A finite number of at most ``limits.MAX_OPTION`` in size (a generator's option)."""
    value = real(value)
    if abs(value) > limits.MAX_OPTION:
        raise ValueError(f"must be between {-limits.MAX_OPTION:g} and {limits.MAX_OPTION:g}, "
                         f"not {value:g}")
    return value


def integer(value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number, not {short(value)}")
    return value


def count(value):
    """A positive whole number (a number of examples, classes, ...)."""
    value = integer(value)
    if value < 1:
        raise ValueError(f"must be at least 1, not {short(value)}")
    if value > limits.MAX_EXAMPLES:
        raise ValueError(f"must be at most {limits.MAX_EXAMPLES:,}, not {short(value)}")
    return value


def seed(value):
    value = integer(value)
    if not 0 <= value <= limits.MAX_SEED:
        raise ValueError(f"must be a whole number from 0 to 2**64 - 1, not {short(value)}")
    return value


def nonnegative(value):
    value = moderate(value)
    if value < 0:
        raise ValueError(f"must be >= 0, not {value}")
    return value


def flag(value):
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {short(value)}")
    return value


def fraction(value):
    """A number in [0, 1) (the inner circle's radius)."""
    value = real(value)
    if not 0 <= value < 1:
        raise ValueError(f"must be >= 0 and < 1, not {value}")
    return value


def classes(value):
    value = count(value)
    if not 2 <= value <= limits.MAX_CLASSES:
        raise ValueError(f"must be from 2 to {limits.MAX_CLASSES}, not {short(value)}")
    return value


def reals(value):
    """A non-empty list of at most ``limits.MAX_TERMS`` moderate numbers."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"must be a non-empty list of numbers, not {short(value)}")
    if len(value) > limits.MAX_TERMS:
        raise ValueError(f"has {len(value):,} numbers, more than the limit of "
                         f"{limits.MAX_TERMS:,}")
    return [moderate(v) for v in value]


def real_or_reals(value):
    return reals(value) if isinstance(value, (list, tuple)) else moderate(value)


def choice(*choices):
    """One of the names ``choices``."""
    def check(value):
        if not isinstance(value, str) or value not in choices:
            hint = did_you_mean(value, choices) if isinstance(value, str) else ""
            raise ValueError(f"must be one of {', '.join(choices)}, not {short(value)}{hint}")
        return value
    return check


def as_written(value):
    """Any value, passed on as written: its source kind checks it, with a message located at
    the entry at fault (``columns.x``, ``keys.t``, ``names``)."""
    return value
