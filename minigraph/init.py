"""Parameter initializers, all drawn from one seeded NumPy generator.

Values are drawn on the host in float64 and then cast, so a seeded run starts from the same
bits on every machine and backend.  Fans follow the usual conventions: a matmul weight
``(in, out)`` has fan_in = in, fan_out = out; a conv weight ``(out, in, kh, kw)`` has
fan_in = in*kh*kw, fan_out = out*kh*kw.
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


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of this shape."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    if len(shape) == 2:
        return shape[0], shape[1]
    return shape[1] * receptive, shape[0] * receptive


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


def initialize(init, shape, rng: np.random.Generator, dtype="float32") -> np.ndarray:
    """A new host array of ``shape`` filled by ``init`` (already checked)."""
    shape = tuple(shape)
    fan_in, fan_out = fans(shape)
    if isinstance(init, (int, float)) and not isinstance(init, bool):
        out = np.full(shape, float(init))
    elif init == "zeros":
        out = np.zeros(shape)
    elif init == "ones":
        out = np.ones(shape)
    elif init == "xavier_uniform":
        a = math.sqrt(6.0 / (fan_in + fan_out))
        out = rng.uniform(-a, a, shape)
    elif init == "xavier_normal":
        out = rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), shape)
    elif init == "he_uniform":
        a = math.sqrt(6.0 / fan_in)
        out = rng.uniform(-a, a, shape)
    elif init == "he_normal":
        out = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
    else:
        (kind, arg), = init.items()
        if kind == "constant":
            out = np.full(shape, float(arg))
        elif kind == "value":
            out = np.asarray(arg, dtype=np.float64).reshape(shape)
        elif kind == "uniform":
            out = rng.uniform(float(arg.get("low", -1.0)), float(arg.get("high", 1.0)), shape)
        else:
            out = rng.normal(float(arg.get("mean", 0.0)), float(arg.get("std", 1.0)), shape)
    return np.asarray(out, dtype=dtype)
