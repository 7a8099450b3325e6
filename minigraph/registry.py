"""One registry helper: names -> classes (or functions) of one kind, filled by a decorator."""
from __future__ import annotations

from .errors import MinigraphError, did_you_mean, known


class Registry(dict):
    """A dict from name to entry that knows what it holds, for decorators and errors.

    ``@registry.register("adam")`` (or ``@registry.register()`` for a class with a ``name``)
    adds an entry; ``registry.lookup(name)`` returns it or raises a :class:`MinigraphError`
    with a did-you-mean and the names that exist.
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

    def lookup(self, name, error=MinigraphError):
        """The entry called ``name``, or ``error`` saying which names exist."""
        entry = self.get(name) if isinstance(name, str) else None
        if entry is None:
            raise error(f"unknown {self.what} '{name}'{did_you_mean(str(name), self)}; "
                        f"choose one of {known(self)}")
        return entry
