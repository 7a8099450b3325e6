"""Checking data against a graph's declared inputs before any op runs.

Symbolic dimensions (``batch``) are bound from the arrays' shapes with
:mod:`minigraph.shapes`, and the graph's shapes are inferred again with the real sizes, so a
mismatch that only the data reveals is a located error rather than a failure deep in an op.
"""
from __future__ import annotations

import numpy as np

from ..backend import Backend, to_numpy
from ..errors import DataError, did_you_mean, known
from ..graph import Graph
from ..limits import short
from ..ops.base import fmt_shape
from ..shapes import BindError, batch_shapes, bind_dims, bound_shapes
from .plan import FLOAT_DTYPES


class FeedChecker:
    """The feed checks of one graph on one backend, with every tensor's shape cached per
    binding of the symbolic dimensions."""

    def __init__(self, graph: Graph, backend: Backend, dtype: str):
        self.graph = graph
        self.backend = backend
        self.dtype = dtype
        self._bound: dict = {}  # binding -> every tensor's shape (check_sizes)

    def _input_loc(self, name):
        return self.graph.spec.at("inputs", name)

    def check_feeds(self, feeds: dict, *, infer: bool = True):
        """Check data against the declared inputs; bind symbolic dimensions; cast and move.

        With ``infer`` (the default), the graph's shapes are inferred again with the bound
        sizes (:meth:`check_sizes`), so a shape conflict that only real sizes reveal, or a
        tensor over the size limit, is a located error before any op runs.  Returns
        ``(feeds on the device, {symbol: size})``.
        """
        inputs = self.graph.inputs
        for name in feeds:
            if name not in inputs:
                raise DataError(f"data for {short(name)}, which is not an input of the model"
                                f"{did_you_mean(name, inputs)}; inputs: {known(inputs)}",
                                self.graph.spec.at("inputs"))
        arrays = {name: self._numbers(name, feeds[name]) for name in inputs if name in feeds}
        bindings = self._bind(arrays)
        if infer:
            self.check_sizes(bindings)
        out = {}
        for name, array in arrays.items():
            spec = inputs[name]
            dtype = self.dtype if spec.real_dtype in FLOAT_DTYPES else spec.real_dtype
            out[name] = self.backend.asarray(array, dtype=dtype)
        return out, bindings

    def _numbers(self, name, array):
        """``array`` as an array of numbers fit for input ``name`` (whole numbers for an
        integer input), or a located DataError."""
        spec = self.graph.inputs[name]
        if not hasattr(array, "shape") or not hasattr(array, "dtype"):
            try:
                array = np.asarray(array)
            except (ValueError, TypeError):
                array = np.asarray(None, dtype=object)
        if array.dtype.kind not in "biuf":
            raise DataError(f"input '{name}' gets {array.dtype} values, not numbers",
                            self._input_loc(name))
        if spec.real_dtype not in FLOAT_DTYPES and array.dtype.kind == "f":
            host = to_numpy(array)
            if not (np.all(np.isfinite(host)) and np.all(host == np.round(host))):
                raise DataError(f"input '{name}' is declared {spec.real_dtype} but gets "
                                "non-integer values", self._input_loc(name))
        return array

    def _bind(self, arrays: dict) -> dict:
        """{symbol: size} from the arrays' shapes, or a located DataError."""
        inputs = self.graph.inputs
        try:
            bound = bind_dims({n: s.shape for n, s in inputs.items()},
                              {n: a.shape for n, a in arrays.items()})
        except BindError as exc:
            spec = inputs[exc.name]
            if exc.kind == "symbol":
                raise DataError(f"input '{exc.name}' has {exc.symbol} = {exc.shape[exc.axis]}, "
                                f"but another input has {exc.symbol} = {exc.size} (input "
                                f"'{exc.other}'; shapes {fmt_shape(exc.shape)} and "
                                f"{fmt_shape(arrays[exc.other].shape)})",
                                self._input_loc(exc.name)) from None
            raise DataError(f"input '{exc.name}' is declared with shape "
                            f"{fmt_shape(spec.shape)} but the data has shape "
                            f"{fmt_shape(exc.shape)}: {exc.describe()}",
                            self._input_loc(exc.name)) from None
        return {symbol: size for symbol, (size, _) in bound.items()}

    def check_sizes(self, bindings: dict) -> dict:
        """Every tensor's shape with ``bindings`` (symbol -> size); a conflict or a tensor over
        ``limits.MAX_ELEMENTS`` is a ModelError at the node.  Cached per binding."""
        key = tuple(sorted(bindings.items()))
        shapes = self._bound.get(key)
        if shapes is None:
            shapes = bound_shapes(self.graph, dict(key))
            if len(self._bound) >= 64:  # many different sizes: start afresh rather than grow
                self._bound.clear()
            self._bound[key] = shapes
        return shapes

    def check_batches(self, arrays: dict, sizes) -> None:
        """Check the shapes of batches of each of ``sizes`` examples cut from ``arrays``
        before any op runs (a pass with ``checked=True`` trusts its feeds)."""
        declared = {n: s.shape for n, s in self.graph.inputs.items()}
        for size in sizes:
            try:
                bound = bind_dims(declared, batch_shapes(arrays, size))
            except BindError as exc:
                raise DataError(f"batches of {size} examples do not fit input '{exc.name}', "
                                f"declared with shape {fmt_shape(declared[exc.name])}: "
                                f"{exc.describe()} (declare its first dimension as a symbol, "
                                "such as batch)", self._input_loc(exc.name)) from None
            self.check_sizes({symbol: s for symbol, (s, _) in bound.items()})

    def missing_feeds(self, feeds: dict):
        """A located DataError when ``feeds`` lacks one of the model's inputs."""
        missing = [t for t in self.graph.inputs if t not in feeds]
        if not missing:
            return
        spec = self.graph.spec
        data = spec.data if isinstance(spec.data, dict) else None
        loc = (spec.at("data", "train") if data and "train" in data else None) \
            or spec.at("inputs", missing[0])
        gives = ", ".join(str(k) for k in feeds) or "nothing"
        raise DataError(f"no data for input{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(repr(m) for m in missing)} (the data gives: {gives})", loc)
