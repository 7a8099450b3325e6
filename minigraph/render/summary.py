"""One tensor as the interactive page shows it: plain JSON-ready data, bounded in size.

:func:`summarize` turns an array into ``{"shape", "dtype", "n", "min", "max", "mean", "std",
"norm", "nonfinite"}`` plus, by size:

* ``"full"``: every value (row-major), when it has at most ``full`` elements (the page then
  draws it as a matrix and plugs the numbers into the op's rule);
* ``"hist"``: a histogram of the finite values (``lo``, ``hi``, ``counts``) otherwise;
* ``"maps"``: small heat maps of its last two axes (an image's channels for a conv layer:
  example 0 of an activation, input channel 0 of each filter), as bytes 0-255 between ``lo``
  and ``hi``, base64; at most :data:`MAX_MAPS` maps of at most :data:`MAP_SIDE` squared.

Non-finite entries are counted and left out of the statistics (a NaN gradient must still show
its size elsewhere).  Nothing here runs a model: the caller hands host NumPy arrays.
"""
from __future__ import annotations

import base64
import math

import numpy as np

FULL = 64       # tensors with at most this many elements are kept whole
HIST_BINS = 24
MAX_MAPS = 64   # heat maps per tensor
MAP_SIDE = 32   # a heat map is at most MAP_SIDE x MAP_SIDE (larger ones are block-averaged)


def _number(x) -> float | None:
    """A float for JSON (None for NaN/inf, which JSON cannot carry)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _stats(a: np.ndarray) -> dict:
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a.astype(np.float64)
    out = {"nonfinite": int(a.size - finite.size)}
    if finite.size:
        f = finite.astype(np.float64)
        out.update(min=_number(f.min()), max=_number(f.max()), mean=_number(f.mean()),
                   std=_number(f.std()), norm=_number(np.sqrt(np.square(f).sum())),
                   absmax=_number(np.abs(f).max()))
    return out


def _hist(a: np.ndarray, bins: int = HIST_BINS) -> dict | None:
    finite = a[np.isfinite(a)].astype(np.float64) if a.dtype.kind == "f" else \
        a.astype(np.float64).ravel()
    if not finite.size:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    if hi == lo:
        return {"lo": lo, "hi": hi, "counts": [int(finite.size)]}
    counts, _ = np.histogram(finite, bins=bins, range=(lo, hi))
    return {"lo": lo, "hi": hi, "counts": [int(c) for c in counts]}


def _shrink(m: np.ndarray, side: int = MAP_SIDE) -> np.ndarray:
    """Block-average a (k, h, w) stack down to at most ``side`` x ``side``."""
    k, h, w = m.shape
    fh, fw = math.ceil(h / side), math.ceil(w / side)
    if fh == 1 and fw == 1:
        return m
    ph, pw = -h % fh, -w % fw
    m = np.pad(m, ((0, 0), (0, ph), (0, pw)), mode="edge")
    return m.reshape(k, m.shape[1] // fh, fh, m.shape[2] // fw, fw).mean(axis=(2, 4))


def map_stack(a: np.ndarray, kind: str) -> np.ndarray | None:
    """The (k, h, w) stack of 2-D pictures a tensor is drawn as (None below two axes).

    4-D: example 0 of an activation (N, C, H, W) -> its C channels; a param (O, C, kh, kw)
    -> input channel 0 of each of its O filters.  3-D: the stack itself.  2-D: one map.
    """
    if a.ndim < 2:
        return None
    if a.ndim == 2:
        m = a[None]
    elif a.ndim == 3:
        m = a
    else:
        lead = a.reshape((-1,) + a.shape[-3:])
        m = lead[:, 0] if kind == "param" else lead[0]
    return m[:MAX_MAPS]


def _maps(a: np.ndarray, kind: str) -> dict | None:
    m = map_stack(a, kind)
    if m is None:
        return None
    m = _shrink(np.nan_to_num(m.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0))
    lo, hi = float(m.min()), float(m.max())
    if lo < 0 < hi:  # a diverging picture: 0 in the middle
        lo, hi = -max(-lo, hi), max(-lo, hi)
    span = hi - lo if hi > lo else 1.0
    q = np.round((m - lo) / span * 255).astype(np.uint8)
    return {"k": int(m.shape[0]), "h": int(m.shape[1]), "w": int(m.shape[2]), "lo": lo,
            "hi": hi, "of": int(np.prod(a.shape[:-2])) if a.ndim > 2 else 1,
            "b64": base64.b64encode(q.tobytes()).decode("ascii")}


def summarize(array, kind: str = "node", full: int = FULL) -> dict:
    """The page's view of one host array (see the module docstring)."""
    a = np.asarray(array)
    out = {"shape": [int(d) for d in a.shape], "dtype": str(a.dtype), "n": int(a.size)}
    if a.dtype.kind not in "biuf":
        return out
    if a.dtype.kind == "b":
        a = a.astype(np.uint8)
    out.update(_stats(a))
    if a.size <= full:
        out["full"] = [_number(x) if a.dtype.kind == "f" and not math.isfinite(x) else
                       (int(x) if a.dtype.kind in "iu" else float(x)) for x in a.ravel()]
        return out
    out["hist"] = _hist(a)
    maps = _maps(a, kind)
    if maps is not None:
        out["maps"] = maps
    return out


def summarize_pass(graph, values: dict, grads: dict | None, full: int = FULL) -> dict:
    """Every tensor of one pass: ``{name: {"v": summary, "g": summary or None}}``.

    ``values`` and ``grads`` map tensor names to host arrays (a tensor without a gradient is
    absent from ``grads``; ``grads`` None: no backward pass).
    """
    out = {}
    for name, tensor in graph.tensors.items():
        if name not in values:
            continue
        g = None if grads is None else grads.get(name)
        out[name] = {"v": summarize(values[name], tensor.kind, full),
                     "g": None if g is None else summarize(g, tensor.kind, full)}
    return out


def summarize_slots(flat: dict, full: int = FULL) -> dict:
    """An optimizer's ``state_dict`` (``"NAME/SLOT"`` -> array) as ``{param: {slot: summary}}``;
    the step count ``"t"`` and scalar slots are left out."""
    out: dict = {}
    for key, value in flat.items():
        if "/" not in key or np.ndim(value) == 0:
            continue
        name, slot = key.rsplit("/", 1)
        out.setdefault(name, {})[slot] = summarize(np.asarray(value), "param", full)
    return out
