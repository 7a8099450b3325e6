"""The ``inline`` source: arrays written in the model file, keyed by input name, used as written."""
from __future__ import annotations

import numpy as np

from ..options import Option
from . import kinds
from .context import SplitContext

OPTIONS = {"inline": Option("any", doc="input name -> nested list of numbers",
                          convert=kinds.as_written)}


def load(ctx: SplitContext, source) -> dict:
    """The arrays of an ``inline:`` source; nothing is reshaped."""
    ctx.check_source(source, OPTIONS)
    table = source["inline"]
    if not isinstance(table, dict) or not table:
        raise ctx.model_error(f"{ctx.where()}.inline must map input names to arrays, "
                              f"like {{x: [[0, 1]], t: [[1]]}}", "inline")
    arrays = {}
    for name, value in table.items():
        ctx.input_name(name, "inline", name)
        try:
            array = np.array(value)
        except (ValueError, TypeError, OverflowError, RecursionError):
            raise ctx.data_error(f"{ctx.where()}.inline.{name} is ragged: every row must "
                                 f"have the same length", "inline", name) from None
        if array.dtype.kind not in "biuf":
            raise ctx.data_error(f"{ctx.where()}.inline.{name} must contain only numbers",
                                 "inline", name)
        arrays[name] = array
    return arrays
