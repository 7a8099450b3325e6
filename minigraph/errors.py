"""Errors that minigraph reports to users.

Every mistake in a model file, a flag or the data becomes a :class:`MinigraphError` carrying a
location (``FILE:LINE:COLUMN``) when one is known.  The CLI prints ``str(error)`` and exits 2
(1 for a :class:`RunError`).  A mistake in one option of a table is an
``options.OptionError``, a :class:`ModelError` that names its ``key``.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a model file; line and column count from 1."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


class MinigraphError(Exception):
    """A user-facing error: a message and, when known, where it happened."""

    def __init__(self, message: str, location: Location | None = None):
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if self.location is not None:
            return f"{self.location}: {self.message}"
        return self.message


class ModelError(MinigraphError):
    """The model file is wrong (syntax, schema, graph or shapes)."""


class DataError(MinigraphError):
    """Training or test data is missing or malformed."""


class BackendError(MinigraphError):
    """The requested array backend is not usable."""


class RunError(MinigraphError):
    """The run itself failed (for example the loss became NaN); the CLI exits 1."""


class GradientShapeError(RunError):
    """A custom op's backward returned a gradient whose shape is not its input's."""


class UnknownName(MinigraphError, KeyError):
    """A tensor, node or param name the model does not have (also a ``KeyError``, so code
    that looks names up the dict way keeps working)."""


def did_you_mean(name: str, choices) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""``."""
    try:
        name = str(name)
        choices = [str(c) for c in choices]
    except ValueError:  # an integer too long to print
        return ""
    same_case = [c for c in choices if c.lower() == name.lower()]
    cutoff = 0.6 if len(name) <= 3 else 0.7
    prefix = [c for c in choices if len(name) >= 3 and c.startswith(name)]
    close = same_case or difflib.get_close_matches(name, choices, n=1, cutoff=cutoff) or prefix
    return f" (did you mean '{close[0]}'?)" if close else ""


def known(choices, limit: int = 12) -> str:
    """A short list of the valid names, for error messages that list what exists."""
    names = sorted(str(c) for c in choices)
    shown = ", ".join(names[:limit])
    return shown + (", ..." if len(names) > limit else "")
