"""Array backends: NumPy (CPU) and CuPy (GPU).

This module is the only place that imports CuPy.  Ops never choose a backend: they call
:func:`get_array_module` on their inputs (DeZero's ``xp`` idiom) and use whatever comes back.
The backend of a run is chosen once, by name (``numpy``, ``cupy`` or ``auto``); the environment
variable ``MINIGRAPH_BACKEND`` supplies the default.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy

from .errors import BackendError

BACKENDS = ("numpy", "cupy", "auto")


def _import_cupy():
    """Import CuPy, or return the reason it is not usable."""
    try:
        import cupy  # noqa: F401  (the one CuPy import of the project)
    except Exception as exc:  # ImportError, or a CUDA library that fails to load
        return None, f"CuPy is not installed ({exc.__class__.__name__}: {exc})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, "CuPy is installed but no CUDA GPU is visible"
    except Exception as exc:
        return None, f"CuPy is installed but no CUDA GPU is usable ({exc})"
    return cupy, None


def cupy_or_none():
    """The CuPy module when a GPU is usable, else None."""
    return _import_cupy()[0]


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    for a in arrays:
        if type(a) is numpy.ndarray:
            continue
        mod = type(a).__module__
        if mod.startswith("cupy"):
            import cupy

            return cupy
    return numpy


@dataclass(frozen=True)
class Backend:
    """A chosen array backend: its name and its array module ``xp``."""

    name: str
    xp: object

    def asarray(self, a, dtype=None):
        """Move ``a`` onto this backend (a no-op when it is already there)."""
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a):
        """Bring ``a`` back to a NumPy array on the host."""
        return to_numpy(a)

    def synchronize(self):
        """Wait for queued device work (for timing); a no-op on the CPU."""
        if self.name == "cupy":
            self.xp.cuda.get_current_stream().synchronize()


def to_numpy(a):
    """A NumPy array for ``a``, copying from the GPU when needed."""
    if type(a) is numpy.ndarray:  # the usual case, at once
        return a
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return numpy.asarray(a)


def select(name: str | None = None) -> Backend:
    """Pick the backend by name; ``None`` reads ``MINIGRAPH_BACKEND`` (default ``numpy``)."""
    name = (name or os.environ.get("MINIGRAPH_BACKEND") or "numpy").lower()
    if name not in BACKENDS:
        raise BackendError(f"unknown backend '{name}'; choose one of {', '.join(BACKENDS)}")
    if name == "numpy":
        return Backend("numpy", numpy)
    cupy, why = _import_cupy()
    if cupy is not None:
        return Backend("cupy", cupy)
    if name == "auto":
        return Backend("numpy", numpy)
    raise BackendError(
        f"--backend cupy is not usable: {why}. "
        "Install the GPU extra on a machine with CUDA: pip install 'minigraph[gpu]'"
    )
