"""One registry helper: names -> classes (or functions) of one kind, filled by a decorator.

Ops (``REGISTRY``), layer ops (``LAYERS``), optimizers (``OPTIMIZERS``), learning-rate
schedules (``SCHEDULES``) and metrics (``METRICS``) are each one :class:`Registry`.
"""
from __future__ import annotations

from .errors import MinigraphError, did_you_mean, known
from .limits import short
from .options import OptionError


class Registry(dict):
    """A dict from name to entry that knows what it holds, for decorators and errors.

    ``@registry.register("adam")`` (or ``@registry.register()`` for a class with a ``name``)
    adds an entry; ``registry.lookup(name)`` returns it or raises a :class:`MinigraphError`
    with a did-you-mean and the names that exist; ``registry.typed(config)`` reads a
    ``{type: NAME, **options}`` section.
    """

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def register(self, name: str | None = None):
        def add(entry):
            key = name if name is not None else getattr(entry, "name", "")
            if not key:
                raise ValueError(f"{entry!r} has no name to register it under")
            if name is not None and isinstance(entry, type):
                entry.name = name
            if isinstance(entry, type) and not getattr(entry, "doc", "") and entry.__doc__:
                entry.doc = entry.__doc__.strip().splitlines()[0]
            self[key] = entry
            return entry
        return add

    def lookup(self, name, error=MinigraphError, noun: str = ""):
        """The entry called ``name``, or ``error`` saying which names exist."""
        entry = self.get(name) if isinstance(name, str) else None
        if entry is None:
            raise error(f"unknown {noun or self.what} {short(name)}"
                        f"{did_you_mean(str(name), self)}; choose one of {known(self)}")
        return entry

    def typed(self, config) -> tuple:
        """``(entry, options)`` from ``{type: NAME, **options}``; an :class:`OptionError` whose
        ``key`` is ``"type"`` (None when ``config`` is no mapping) otherwise."""
        if not isinstance(config, dict):
            raise OptionError(f"{self.what} must be a mapping with a 'type', got "
                              f"{short(config)}")
        options = dict(config)
        kind = options.pop("type", None)
        if kind is None:
            raise OptionError(f"{self.what} needs a 'type'; choose one of {known(self)}", "type")
        try:
            return self.lookup(kind, noun=f"{self.what} type"), options
        except MinigraphError as exc:
            raise OptionError(exc.message, "type") from None
