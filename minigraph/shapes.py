"""Shapes once data arrives: bind symbolic dimensions, then infer every tensor's real shape.

A model file declares shapes with symbols (``x: {shape: [batch, 784]}``); ``build_graph``
checks them symbolically, which cannot see a conflict that appears only once the symbols have
sizes (a ``reshape`` to ``(32, -1)`` of a ``(batch, 10)`` tensor, two inputs whose ``n`` differ,
a matmul of ``(batch, n)`` by ``(3, 1)``).  This module is the one place where data meets the
declared shapes:

* :func:`bind_dims` checks arrays' shapes against declared shapes and binds the symbols
  (used by ``data/`` when a data section is loaded and by the engine when feeds arrive);
* :func:`bound_shapes` re-runs the graph's shape inference with those sizes, so a conflict is
  a located :class:`~minigraph.errors.ModelError` naming the node, its op, the tensors and their
  shapes, and no tensor of the pass may hold more than ``limits.MAX_ELEMENTS`` numbers.  Both
  happen before any op runs.
"""
from __future__ import annotations

import math

from . import limits
from .errors import ModelError
from .ops.base import ShapeError, fmt_shape


class BindError(Exception):
    """A shape that does not fit its declaration.

    ``kind`` is ``"rank"`` (number of dimensions), ``"dim"`` (a fixed size differs, at
    ``axis``) or ``"symbol"`` (a symbol already bound to another size by input ``other``).
    """

    def __init__(self, kind, name, shape, declared, *, axis=None, symbol=None, size=None,
                 other=None):
        self.kind, self.name, self.shape, self.declared = kind, name, tuple(shape), declared
        self.axis, self.symbol, self.size, self.other = axis, symbol, size, other
        super().__init__(self.describe())

    def describe(self) -> str:
        if self.kind == "rank":
            return f"it has {len(self.shape)} dimensions, not {len(self.declared)}"
        if self.kind == "dim":
            return f"dimension {self.axis} is {self.shape[self.axis]}, not {self.declared[self.axis]}"
        return (f"'{self.symbol}' is {self.size} for input {self.other!r} but "
                f"{self.shape[self.axis]} for input {self.name!r}")


def bind_dims(declared: dict, shapes: dict) -> dict:
    """Bind the symbols of ``declared`` (input -> declared shape) to ``shapes``' sizes.

    ``shapes`` maps input name -> actual shape; inputs without a declared shape (``None``) and
    names that are not declared are skipped.  Returns ``{symbol: (size, input that fixed it)}``;
    raises :class:`BindError` at the first shape that does not fit (inputs in ``shapes`` order).
    """
    bound: dict = {}
    for name, shape in shapes.items():
        want = declared.get(name)
        if want is None:
            continue
        shape = tuple(shape)
        if len(shape) != len(want):
            raise BindError("rank", name, shape, want)
        for axis, (w, got) in enumerate(zip(want, shape)):
            if isinstance(w, str):
                if w in bound and bound[w][0] != got:
                    raise BindError("symbol", name, shape, want, axis=axis, symbol=w,
                                    size=bound[w][0], other=bound[w][1])
                bound.setdefault(w, (got, name))
            elif w != got:
                raise BindError("dim", name, shape, want, axis=axis)
    return bound


def _bind(shape, sizes):
    return tuple(sizes.get(d, d) if isinstance(d, str) else d for d in shape)


def _text(sizes) -> str:
    return ", ".join(f"{k} = {v}" for k, v in sizes.items())


def bound_shapes(graph, sizes: dict) -> dict:
    """Every tensor's shape with the symbols in ``sizes`` (symbol -> int) replaced by sizes.

    Re-runs each node's shape rule in schedule order.  A rule that fails, or a tensor of more
    than ``limits.MAX_ELEMENTS`` numbers, is a ModelError at the node in the model file.
    """
    spec = graph.spec
    shapes = {name: _bind(t.shape, sizes) for name, t in graph.tensors.items()
              if t.kind != "node"}
    why = f" (with {_text(sizes)} from the data)" if sizes else ""
    for name, shape in shapes.items():
        _check_size(spec, None, name, shape, why, graph.tensors[name].kind)
    for node in graph.nodes:
        try:
            shape = tuple(node.op.infer(*[shapes[t] for t in node.inputs]))
        except ShapeError as exc:
            given = ", ".join(f"{t} {fmt_shape(shapes[t])}" for t in node.inputs)
            raise ModelError(f"{_label(node)}: {exc}; inputs: {given}{why}",
                             _node_loc(spec, node)) from None
        shapes[node.outputs[0]] = shape
        _check_size(spec, node, node.outputs[0], shape, why)
    return shapes


def _label(node) -> str:
    owner = node.spec.name if node.spec is not None else node.name
    label = node.name if node.name == owner else f"{owner}' ('{node.name}"
    return f"node '{label}' ({node.op.name})"


def _node_loc(spec, node):
    return spec.node_at(node.spec, "op") if node.spec is not None else None


def _check_size(spec, node, name, shape, why, kind="node"):
    if not all(isinstance(d, int) for d in shape):
        return
    count = math.prod(shape)
    if count <= limits.MAX_ELEMENTS:
        return
    message = (f"tensor '{name}' would have shape {fmt_shape(shape)}{why}: {count:,} numbers, "
               f"more than the limit of {limits.MAX_ELEMENTS:,} per tensor; use a smaller "
               "batch_size or smaller layers")
    if node is not None:
        raise ModelError(f"{_label(node)}: {message}", _node_loc(spec, node))
    section = {"input": "inputs", "param": "params", "constant": "constants"}.get(kind, "inputs")
    raise ModelError(message, spec.at(section, name))


def batch_shapes(arrays: dict, size: int) -> dict:
    """The shapes of one batch of ``size`` examples cut from ``arrays`` (scalars stay whole)."""
    return {name: (() if len(a.shape) == 0 else (size,) + tuple(a.shape[1:]))
            for name, a in arrays.items()}


def batch_sizes(n: int, batch_size, drop_last: bool = False) -> list:
    """The different batch sizes that cutting ``n`` examples into batches gives."""
    if n <= 0:
        return []
    if batch_size is None:
        return [n]
    sizes = []
    if batch_size <= n:
        sizes.append(batch_size)
    rest = n % batch_size
    if rest and not drop_last:
        sizes.append(rest)
    return sizes
