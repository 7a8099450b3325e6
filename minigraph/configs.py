"""Shared machinery of the typed config sections (``train.optimizer``, ``train.schedule``).

Each section is ``{type: NAME, option: value, ...}``; its classes are registered by name.
Mistakes raise :class:`ModelError` with ``.key`` naming the offending key, so the caller can
point at that key's line in the model file.
"""
from __future__ import annotations

import math
import numbers

from .errors import ModelError, did_you_mean, known


def registrar(table: dict):
    """A class decorator factory: ``@register("adam")`` puts the class in ``table``."""

    def register(name: str):
        def add(cls):
            cls.name = name
            table[name] = cls
            return cls

        return add

    return register


def config_error(message: str, key: str) -> ModelError:
    """A ModelError that remembers which config key is wrong (the caller adds the location)."""
    error = ModelError(message)
    error.key = key
    return error


def split_type(what: str, config, table: dict):
    """``(class, options)`` from ``{type: NAME, **options}``, with did-you-mean errors."""
    if not isinstance(config, dict):
        raise config_error(f"{what} must be a mapping with a 'type', got {config!r}", what)
    options = dict(config)
    kind = options.pop("type", None)
    if kind is None:
        raise config_error(f"{what} needs a 'type'; choose one of {known(table)}", "type")
    if not isinstance(kind, str) or kind not in table:
        raise config_error(f"unknown {what} type '{kind}'{did_you_mean(kind, table)}; "
                           f"choose one of {known(table)}", "type")
    return table[kind], options


def check_names(what: str, name: str, given, allowed) -> None:
    """Refuse option names the class does not have, suggesting the closest one."""
    for key in given:
        if not isinstance(key, str) or key not in allowed:
            raise config_error(f"unknown option '{key}' for {what} '{name}'"
                               f"{did_you_mean(key, allowed)}; valid options: "
                               f"{known(allowed) or '(none)'}", str(key))


def number(where, key, value, *, minimum=0.0, strict=False) -> float:
    """A finite float >= ``minimum`` (> when ``strict``); bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise config_error(f"{where} must be a number, got {value!r}", key)
    value = float(value)
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise config_error(f"{where} must be a finite number {bound}, got {value!r}", key)
    return value
