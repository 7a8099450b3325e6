"""Custom ops for the command line: modules the user names with ``minigraph --import MODULE``.

A model file never runs code, so a model that uses custom ops (``mg.register_op`` or
``@mg.register``) needs them registered before it is loaded.  In Python that is an ``import``;
on the command line ``minigraph --import my_ops check model.yaml`` imports the module
``my_ops`` by name (an installed module, or ``my_ops.py`` in the current folder) before the
command runs.  Only modules named on the command line are imported: nothing in a model file
makes minigraph import or run anything.
"""
from __future__ import annotations

import importlib
import os
import re
import sys

from .errors import MinigraphError

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def import_modules(names) -> list:
    """Import each module named in ``names`` (dotted names; the current folder is searched
    after the installed modules); a MinigraphError names one that cannot be imported."""
    modules = []
    for name in names:
        if not isinstance(name, str) or not _MODULE.fullmatch(name):
            raise MinigraphError(f"--import takes a module name like my_ops or pkg.ops, not "
                                 f"{name!r} (a path or file is not imported)")
        here = os.getcwd()
        added = here not in sys.path
        if added:
            sys.path.append(here)  # `my_ops.py` beside the model, as `python -m` would see it
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            raise MinigraphError(f"cannot import module '{name}' (--import): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the module's own code failed
            raise MinigraphError(f"importing module '{name}' (--import) failed: "
                                 f"{type(exc).__name__}: {exc}") from None
        finally:
            if added:
                sys.path.remove(here)
    return modules
