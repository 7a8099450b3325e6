"""Forward and backward passes over a graph's schedule.

The runtime state of a pass is one dict from tensor name to array (``Pass.values``), filled in
schedule order.  Backward seeds d(loss)/d(loss) = 1 and walks the schedule in reverse; each op's
local rule returns one gradient per input, and gradients of a tensor read by several nodes are
summed (fan-out).  Nodes that cannot reach a tensor we want a gradient for are skipped, and so
are non-differentiable ops (``sign``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .backend import Backend, select, to_numpy
from .errors import DataError, did_you_mean, known
from .graph import Graph
from .init import initialize
from .ops.base import Context, fmt_shape

FLOAT_DTYPES = ("float32", "float64")


@dataclass
class Pass:
    """One forward (and maybe backward) pass: values and gradients by tensor name."""

    values: dict
    ctxs: dict = field(default_factory=dict)
    grads: dict = field(default_factory=dict)
    bindings: dict = field(default_factory=dict)  # symbolic dimension -> size


def init_params(graph: Graph, seed: int = 0, backend: Backend | None = None,
                dtype: str = "float32") -> dict:
    """Fresh params for ``graph``, drawn in a fixed order from one generator seeded ``seed``."""
    backend = backend or select("numpy")
    rng = np.random.default_rng(seed)
    return {name: backend.asarray(initialize(p.init, p.shape, rng, dtype))
            for name, p in graph.params.items()}


class Executor:
    """Runs forward and backward passes of one graph on one backend.

    ``wrt`` names the tensors whose gradients backward must produce (default: the params).
    What cannot reach them from the loss is pruned once, here, not at every step.
    """

    def __init__(self, graph: Graph, backend: Backend | None = None, dtype: str = "float32",
                 wrt=None):
        self.graph = graph
        self.backend = backend or select("numpy")
        self.xp = self.backend.xp
        self.dtype = dtype
        self.set_wrt(wrt)
        self.constants = {
            name: self.backend.asarray(np.asarray(c.value, dtype=c.dtype or dtype))
            for name, c in graph.spec.constants.items()
        }

    def set_wrt(self, wrt=None):
        """Choose which tensors get gradients: ``None`` = params, ``"all"`` = every tensor."""
        g = self.graph
        if wrt == "all":
            wanted = {t for t, info in g.tensors.items()
                      if info.dtype in FLOAT_DTYPES}
        elif wrt is None:
            wanted = set(g.params)
        else:
            wanted = set(wrt)
        # a tensor "requires grad" when it is wanted or is computed from a wanted tensor
        requires = set(wanted)
        for node in g.nodes:
            if node.op.differentiable and any(t in requires for t in node.inputs):
                requires.update(node.outputs)
        self.wanted = wanted
        self.requires = requires
        self.backward_nodes = [n for n in reversed(g.nodes)
                               if n.op.differentiable and n.outputs[0] in requires]
        self.needs = {n.name: tuple(t in requires for t in n.inputs) for n in g.nodes}

    # -- feeds ------------------------------------------------------------------------------
    def check_feeds(self, feeds: dict) -> dict:
        """Check data against the declared inputs; bind symbolic dimensions; cast and move."""
        inputs = self.graph.inputs
        bindings: dict = {}
        out = {}
        for name in feeds:
            if name not in inputs:
                raise DataError(f"data for '{name}', which is not an input of the model"
                                f"{did_you_mean(name, inputs)}; inputs: {known(inputs)}")
        for name, spec in inputs.items():
            if name not in feeds:
                continue
            array = feeds[name]
            shape = tuple(array.shape)
            if len(shape) != len(spec.shape):
                raise DataError(f"input '{name}' is declared with shape {fmt_shape(spec.shape)} "
                                f"but the data has shape {fmt_shape(shape)}")
            for want, got in zip(spec.shape, shape):
                if isinstance(want, str):
                    if bindings.setdefault(want, got) != got:
                        raise DataError(f"input '{name}' has {want} = {got}, but another input "
                                        f"has {want} = {bindings[want]}")
                elif want != got:
                    raise DataError(f"input '{name}' is declared with shape "
                                    f"{fmt_shape(spec.shape)} but the data has shape "
                                    f"{fmt_shape(shape)}")
            dtype = self.dtype if spec.real_dtype in FLOAT_DTYPES else spec.real_dtype
            out[name] = self.backend.asarray(array, dtype=dtype)
        return out, bindings

    # -- passes -----------------------------------------------------------------------------
    def forward(self, params: dict, feeds: dict, *, training: bool = False, rng=None,
                checked: bool = False) -> Pass:
        """Run every node in schedule order; returns the pass with all values."""
        if checked:
            values, bindings = dict(feeds), {}
        else:
            values, bindings = self.check_feeds(feeds)
        values.update(self.constants)
        values.update(params)
        missing = [t for t in self.graph.inputs if t not in values]
        if missing:
            raise DataError(f"no data for input{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(repr(m) for m in missing)}")
        ctxs = {}
        for node in self.graph.nodes:
            ctx = Context(training, rng, self.needs[node.name])
            values[node.outputs[0]] = node.op.forward(ctx, *[values[t] for t in node.inputs])
            ctxs[node.name] = ctx
        return Pass(values, ctxs, {}, bindings)

    def backward(self, run: Pass, loss: str | None = None, keep_all: bool = True) -> dict:
        """Gradients of ``loss`` w.r.t. the wanted tensors (all visited ones if ``keep_all``)."""
        loss = loss or self.graph.loss
        if loss is None:
            raise DataError("the model has no 'loss', so there is nothing to differentiate")
        xp = self.xp
        grads = {loss: xp.ones_like(run.values[loss])}
        for node in self.backward_nodes:
            out = node.outputs[0]
            gy = grads.get(out)
            if gy is None:
                continue
            gxs = node.op.backward(run.ctxs[node.name], gy)
            if len(gxs) != len(node.inputs):
                raise RuntimeError(f"op '{node.op_name}' returned {len(gxs)} gradients for "
                                   f"{len(node.inputs)} inputs")
            for t, g, need in zip(node.inputs, gxs, self.needs[node.name]):
                if g is None or not need:
                    continue
                grads[t] = g if t not in grads else grads[t] + g
            if not keep_all and out not in self.wanted:
                del grads[out]
        if not keep_all:
            grads = {t: g for t, g in grads.items() if t in self.wanted}
        run.grads = grads
        return grads

    def first_nonfinite(self, run: Pass):
        """The first node (in schedule order) whose output holds NaN or inf, or None."""
        xp = self.xp
        for node in self.graph.nodes:
            value = run.values.get(node.outputs[0])
            if value is not None and not bool(xp.all(xp.isfinite(value))):
                return node
        return None


def as_numpy(mapping: dict) -> dict:
    """Copy every array of a name -> array dict to the host."""
    return {k: to_numpy(v) for k, v in mapping.items()}
