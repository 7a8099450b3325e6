"""Arrays checked against the declared inputs: each cast to its input's dtype and its shape
bound to the declared one (symbolic sizes must agree across the inputs of a split)."""
from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..limits import short
from ..shapes import BindError, bind_dims
from .context import SplitContext


def finish(ctx: SplitContext, arrays, label=None):
    """Cast each array to its input's dtype and check it against the declared shape.

    ``label`` names the split in error messages (default: the context's split)."""
    label = label or ctx.split
    result = {name: _cast(ctx, label, name, array) for name, array in arrays.items()}
    _check_shapes(ctx, label, result)
    return result


def _cast(ctx, split, name, array):
    declared = ctx.inputs.get(name, {}).get("dtype") or "float32"
    try:
        dtype = np.dtype(declared)
    except (TypeError, ValueError):
        raise ModelError(f"input {short(name)} has an unknown dtype {short(declared)}") from None
    keys = ctx.keys_for(name)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ctx.data_error(f"{split} data for input {short(name)} holds NaN or infinite "
                             "values; every value must be a finite number", *keys)
    if dtype.kind in "iu" and array.dtype.kind in "fiu" and array.dtype != dtype:
        info = np.iinfo(dtype)
        if array.dtype.kind == "f" and not np.all(array == np.round(array)):
            raise ctx.data_error(f"{split} data for input {short(name)} has non-integer values, "
                                 f"but the input's dtype is {dtype}", *keys)
        if array.min() < info.min or array.max() > info.max:
            raise ctx.data_error(f"{split} data for input {short(name)} has values outside "
                                 f"the range of its dtype {dtype}", *keys)
    with np.errstate(all="ignore"):
        result = array.astype(dtype, copy=False)
    if dtype.kind == "f" and array.dtype.kind == "f" and not np.isfinite(result).all():
        raise ctx.data_error(f"{split} data for input {short(name)} has values too large "
                             f"for its dtype {dtype}", *keys)
    return result


def _shape_text(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _check_shapes(ctx, split, arrays):
    """Check each array against its declared shape; symbolic sizes must agree across arrays."""
    declared = {name: ctx.inputs.get(name, {}).get("shape") for name in arrays}
    try:
        bind_dims(declared, {name: a.shape for name, a in arrays.items()})
    except BindError as exc:
        name, keys = exc.name, ctx.keys_for(exc.name)
        if exc.kind == "symbol":
            raise ctx.data_error(
                f"{split} data: {exc.describe()} (declared shapes "
                f"{_shape_text(declared[exc.other])} and {_shape_text(declared[name])}); "
                "they must be equal", *keys) from None
        hint = ""
        if (ctx.kind == "dataset" and exc.kind == "rank"
                and exc.shape[-1:] in ((28,), (784,))):  # the images, not the labels
            hint = " (set flatten: true for [batch, 784] or false for [batch, 1, 28, 28])"
        raise ctx.data_error(
            f"{split} data for input {short(name)} has shape {exc.shape}, but the model "
            f"declares {name} with shape {_shape_text(declared[name])}: {exc.describe()}{hint}",
            *keys) from None
    examples = {name: a.shape[0] for name, a in arrays.items()
                if declared[name] and isinstance(declared[name][0], str)}
    if len(set(examples.values())) > 1:
        detail = ", ".join(f"{name}: {n}" for name, n in examples.items())
        raise ctx.data_error(f"{split} data: the inputs have different numbers of examples "
                             f"({detail})", ctx.kind)
