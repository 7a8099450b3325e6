"""One way to declare and check options: op attributes, optimizer and schedule options, train
keys (and, next, data-source options).

A class (or table) declares ``{name: Option(kind, default, doc, ...)}``; :func:`check_options`
checks what a model file gave against it -- unknown names with a did-you-mean, missing required
ones, each value's kind and range -- and returns the values with defaults filled in.  The same
declarations give ``minigraph ops`` and ``--help`` their documentation (:func:`describe`).  An
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

# How check_options words a name nobody declared: ``{owner}``, ``{what}``, ``{key}``, ``{hint}``
# and ``{names}`` are filled in.  Op attributes use HAS_NO ("op 'bce' has no attribute ...").
UNKNOWN = "unknown {what} {key} in {owner}{hint}; valid {what}s: {names}"
HAS_NO = "{owner} has no {what} {key}{hint}; its {what}s: {names}"


class OptionError(ModelError):
    """An option that does not fit its declaration; ``key`` names it (None: the whole table).

    The error carries no location when it is raised: the caller, who knows where the table sits
    in the model file, makes the located error with :meth:`at`.
    """

    def __init__(self, message: str, key: str | None = None, location=None, reason=None):
        super().__init__(message, location)
        self.key = key
        self.reason = reason  # for a ``convert`` option: the words after its name ("must be ...")

    def at(self, location) -> "OptionError":
        """The same error, located (the caller finds the place from ``self.key``)."""
        return type(self)(self.message, self.key, location, self.reason)


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
    "pair": lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_is_number, v)),
    "int_or_ints": lambda v: _is_int(v) or (isinstance(v, list) and len(v) == 2
                                            and all(_is_int(i) for i in v)),
    "axis": lambda v: v is None or _is_int(v) or (isinstance(v, list)
                                                   and all(_is_int(i) for i in v)),
    "mapping": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "any": lambda v: True,
}


def _bound(x) -> str:
    return f"{x:,}" if _is_int(x) else f"{x:g}"


@dataclass(frozen=True)
class Option:
    """One declared option.

    ``kind`` is a key of ``KIND_CHECKS``; ``default`` is :data:`REQUIRED` for an option that
    must be given; ``choices`` lists the allowed values; ``minimum``/``maximum`` (inclusive) and
    ``above``/``below`` (exclusive) bound numbers (and each number of a list).  Messages name a
    valid value by its kind ("attribute 'alpha' must be float"); ``words`` says it in words
    instead ("a positive integer") for a wrong kind, a wrong choice or a value under the
    bounds.  ``maximum`` is a size limit and keeps its own sentence ("must be at most ...").
    """

    kind: str
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    words: str | None = None
    # A check no kind can say (a number written as a string, a value with its own wording):
    # ``value -> converted value``, or ``ValueError("must be ...")``; replaces the kind's check
    # (the kind then only documents the option).
    convert: Callable | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def check(self, name: str, value, subject: str | None = None):
        """``value`` converted to the declared kind, or an :class:`OptionError`.

        ``subject`` names the option in messages (default ``option 'NAME'``).
        """
        subject = subject or f"option '{name}'"
        if self.convert is not None:
            try:
                return self.convert(value)
            except ValueError as exc:
                raise OptionError(f"{subject} {exc}", name, reason=str(exc)) from None
        if value is None and self.default is None:
            return None
        if not KIND_CHECKS[self.kind](value):
            self._fail(name, subject, self.words or self.kind, value)
        if self.choices is not None and value not in self.choices:
            hint = did_you_mean(value, self.choices) if isinstance(value, str) else ""
            self._fail(name, subject, self.words or f"one of {list(self.choices)}", value, hint)
        for number in (value if isinstance(value, (list, tuple)) else [value]):
            if _is_number(number):
                self._check_range(name, subject, number, value)
        if self.kind == "float":
            return float(value)
        if self.kind in ("floats", "pair"):
            return tuple(float(v) for v in value)
        return value

    def _fail(self, name, subject, requirement, value, hint=""):
        raise OptionError(f"{subject} must be {requirement}, got {short(value)}{hint}", name)

    def _check_range(self, name, subject, number, value):
        """Finite, of bounded size, and within the declared bounds."""
        try:
            finite = math.isfinite(float(number))
        except OverflowError:
            finite = False
        if not finite:
            self._fail(name, subject, "a finite number", number)
        if abs(number) > LARGEST:
            self._fail(name, subject, "a finite number of reasonable size", number)
        for bound, ok, sentence in (
                (self.minimum, lambda b: number >= b, "at least"),
                (self.above, lambda b: number > b, "greater than"),
                (self.below, lambda b: number < b, "less than")):
            if bound is not None and not ok(bound):
                if self.words:
                    self._fail(name, subject, self.words, value)
                self._fail(name, subject, f"{sentence} {_bound(bound)}", number)
        if self.maximum is not None and number > self.maximum:
            self._fail(name, subject, f"at most {_bound(self.maximum)}", number)


def check_options(declared: dict, given: dict, what: str = "option", owner: str = "this", *,
                  name_as: str = "", unknown: str = UNKNOWN) -> dict:
    """``given`` checked against ``declared``; returns every option, defaults filled in.

    ``what`` names an option in messages ("attribute", "option", "key"), ``owner`` what it
    belongs to ("op 'conv2d'", "optimizer 'adam'"); ``name_as`` is how a message names one
    option, ``{}`` standing for its name (default ``WHAT 'NAME'``); ``unknown`` words a name
    that is not declared (:data:`UNKNOWN`, :data:`HAS_NO`).
    """
    for key in given:
        if not isinstance(key, str) or key not in declared:
            raise OptionError(unknown.format(
                what=what, key=short(key), owner=owner, hint=did_you_mean(str(key), declared),
                names=known(declared) or "none"), str(key))
    values = {}
    for key, option in declared.items():
        if key in given:
            subject = name_as.format(key) if name_as else f"{what} '{key}'"
            values[key] = option.check(key, given[key], subject)
        elif option.required:
            raise OptionError(f"{owner} needs {what} '{key}'"
                              + (f" ({option.doc})" if option.doc else ""), key)
        else:  # a fresh copy: a caller may change a list or mapping it was given
            default = option.default
            values[key] = type(default)(default) if isinstance(default, (list, dict)) else default
    return values


def describe(declared: dict) -> str:
    """``k=default, ...`` with required options bare: the one-line summary of a table."""
    return ", ".join(k if o.required else f"{k}={o.default!r}" for k, o in declared.items())


def document(declared: dict) -> list:
    """``(name, default or 'required', doc)`` rows: a table's documentation for ``--help``."""
    return [(k, "required" if o.required else repr(o.default), o.doc)
            for k, o in declared.items()]
