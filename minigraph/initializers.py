"""Initializer declarations and their checks (no arrays are drawn here).

An initializer is a name (``zeros``, ``ones``, ``xavier_uniform``, ``xavier_normal``,
``he_uniform``, ``he_normal``), a bare number (a constant), or a mapping with one key:
``constant``, ``value``, ``uniform: {low, high}`` or ``normal: {mean, std}``.  The graph checks
each param's initializer with :func:`check_init`; :mod:`minigraph.engine.params` draws them.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import did_you_mean
from .limits import short

NAMED = ("zeros", "ones", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal")
KEYED = {"constant": None, "value": None, "uniform": ("low", "high"), "normal": ("mean", "std")}


class InitError(ValueError):
    """A malformed initializer; the graph adds the file location."""


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InitError(f"{what} must be a number, got {short(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise InitError(f"{what} is too large: {short(value)}") from None
    if not math.isfinite(number) or abs(number) > 1e30:
        raise InitError(f"{what} must be a finite number of reasonable size, got {short(value)}")
    return number


def check_init(init, shape) -> None:
    """Raise :class:`InitError` if ``init`` is not a valid initializer for ``shape``."""
    if isinstance(init, str):
        if init not in NAMED:
            raise InitError(f"unknown initializer {short(init)}"
                            f"{did_you_mean(init, NAMED + tuple(KEYED))}"
                            f"; choose one of {', '.join(NAMED)}, or a mapping with one of "
                            f"{', '.join(KEYED)}")
        return
    if isinstance(init, (int, float)) and not isinstance(init, bool):
        _number(init, "a constant initializer")  # a bare number means a constant
        return
    if not isinstance(init, dict) or len(init) != 1:
        raise InitError(f"an initializer is a name ({', '.join(NAMED)}) or a mapping with one "
                        f"key ({', '.join(KEYED)}), got {short(init)}")
    (kind, arg), = init.items()
    if kind not in KEYED:
        raise InitError(f"unknown initializer {short(kind)}"
                        f"{did_you_mean(kind, tuple(KEYED) + NAMED)}")
    if kind == "constant":
        _number(arg, "the constant")
    elif kind == "value":
        try:
            value = np.asarray(arg, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            raise InitError("'value' must be a number or a nested list of numbers") from None
        if not np.all(np.isfinite(value)):
            raise InitError("'value' must hold finite numbers (no nan or inf)")
        if value.shape != tuple(shape) and value.size != math.prod(shape):
            raise InitError(f"'value' has shape {value.shape} but the param's shape is "
                            f"{tuple(shape)}")
    else:
        if not isinstance(arg, dict):
            raise InitError(f"'{kind}' takes a mapping with keys {', '.join(KEYED[kind])}")
        for key in arg:
            if key not in KEYED[kind]:
                raise InitError(f"unknown key {short(key)} in '{kind}'"
                                f"{did_you_mean(key, KEYED[kind])}; keys: {', '.join(KEYED[kind])}")
        got = {key: _number(arg[key], f"'{kind}.{key}'") for key in KEYED[kind] if key in arg}
        if kind == "normal" and got.get("std", 1.0) < 0:
            raise InitError(f"'normal.std' must not be negative, got {got['std']:g}")
        if kind == "uniform" and got.get("low", -1.0) > got.get("high", 1.0):
            raise InitError(f"'uniform.low' ({got.get('low', -1.0):g}) must not exceed "
                            f"'uniform.high' ({got.get('high', 1.0):g})")
