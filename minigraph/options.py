"""One way to declare and check options: op attributes, optimizer and schedule options, train
keys, data-source options.

A class (or table) declares ``{name: Option(kind, default, doc, ...)}``; :func:`check_options`
checks what a model file gave against it -- unknown names with a did-you-mean, missing required
ones, each value's kind and range -- and returns the values with defaults filled in.  The same
declarations give ``minigraph ops`` and ``--help`` their documentation.  An
:class:`OptionError` names the offending key (``.key``) so the caller can point at its line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ModelError, did_you_mean, known
from .limits import short

REQUIRED = object()  # marker: an option without a default must be given
LARGEST = 1e30  # no option (a slope, a stride, a rate, a size) needs a number beyond this


class OptionError(ModelError):
    """An option that does not fit its declaration; ``key`` names it."""

    def __init__(self, message: str, key: str | None = None, location=None, reason=None):
        super().__init__(message, location)
        self.key = key
        self.reason = reason  # for a ``convert`` option: the words after its name ("must be ...")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


KIND_CHECKS = {
    "int": _is_int,
    "float": _is_number,
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "ints": lambda v: isinstance(v, list) and all(_is_int(i) for i in v),
    "floats": lambda v: isinstance(v, (list, tuple)) and all(_is_number(i) for i in v),
    "int_or_ints": lambda v: _is_int(v) or (isinstance(v, list) and len(v) == 2
                                            and all(_is_int(i) for i in v)),
    "axis": lambda v: v is None or _is_int(v) or (isinstance(v, list)
                                                   and all(_is_int(i) for i in v)),
    "any": lambda v: True,
}

KIND_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false",
              "str": "a name", "ints": "a list of whole numbers", "floats": "a list of numbers",
              "int_or_ints": "a whole number or a pair of them",
              "axis": "an axis, a list of axes or null", "any": "a value"}


@dataclass(frozen=True)
class Option:
    """One declared option: its kind (a key of ``KIND_CHECKS``), default, doc and limits."""

    kind: str
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple | None = None
    minimum: float | None = None  # for numbers (and each number of a list)
    maximum: float | None = None
    # A check no kind can say (a number written as a string, a value with its own wording):
    # ``value -> converted value``, or ``ValueError("must be ...")``; replaces the kind's check
    # (the kind then only documents the option).
    convert: Callable | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def check(self, name: str, value, what: str = "option"):
        """``value`` converted to the declared kind, or an :class:`OptionError`."""
        if self.convert is not None:
            try:
                return self.convert(value)
            except ValueError as exc:
                raise OptionError(f"{what} '{name}' {exc}", name, reason=str(exc)) from None
        if value is None and self.default is None:
            return None
        if not KIND_CHECKS[self.kind](value):
            raise OptionError(f"{what} '{name}' must be {KIND_WORDS[self.kind]}, got "
                              f"{short(value)}", name)
        if self.choices is not None and value not in self.choices:
            hint = did_you_mean(value, self.choices) if isinstance(value, str) else ""
            raise OptionError(f"{what} '{name}' must be one of {list(self.choices)}, got "
                              f"{short(value)}{hint}", name)
        for number in (value if isinstance(value, (list, tuple)) else [value]):
            if _is_number(number):
                self._check_range(name, number, what)
        if self.kind == "float":
            return float(value)
        if self.kind == "floats":
            return tuple(float(v) for v in value)
        return value

    def _check_range(self, name, number, what):
        """Finite, of bounded size, and within the declared minimum and maximum."""
        try:
            finite = math.isfinite(float(number))
        except OverflowError:
            finite = False
        if not finite or abs(number) > LARGEST:
            raise OptionError(f"{what} '{name}' must be a finite number of reasonable size, "
                              f"got {short(number)}", name)
        if self.minimum is not None and number < self.minimum:
            raise OptionError(f"{what} '{name}' must be at least {self.minimum:g}, got "
                              f"{short(number)}", name)
        if self.maximum is not None and number > self.maximum:
            raise OptionError(f"{what} '{name}' must be at most {self.maximum:g}, got "
                              f"{short(number)}", name)


def check_options(declared: dict, given: dict, what: str = "option", owner: str = "") -> dict:
    """``given`` checked against ``declared``; returns every option, defaults filled in.

    ``what`` names an option in messages ("attribute", "option"), ``owner`` what it belongs to
    ("op 'conv2d'", "optimizer 'adam'").
    """
    of = f" of {owner}" if owner else ""
    for key in given:
        if not isinstance(key, str) or key not in declared:
            raise OptionError(f"unknown {what} {short(key)}{of}{did_you_mean(str(key), declared)}"
                              f"; {what}s: {known(declared) or 'none'}", str(key))
    values = {}
    for key, option in declared.items():
        if key in given:
            values[key] = option.check(key, given[key], what)
        elif option.required:
            raise OptionError(f"{owner or 'this'} needs the {what} '{key}'"
                              + (f" ({option.doc})" if option.doc else ""), key)
        else:
            values[key] = option.default
    return values


def describe(declared: dict) -> str:
    """``k=default, ...`` with required options bare: the one-line summary of a table."""
    return ", ".join(k if o.required else f"{k}={o.default!r}" for k, o in declared.items())
