"""Forward and backward passes over a graph's schedule.

The runtime state of a pass is one dict from tensor name to array (``Pass.values``), filled in
schedule order.  Backward seeds d(loss)/d(loss) = 1 and walks the schedule in reverse; each op's
local rule returns one gradient per input, and gradients of a tensor read by several nodes are
summed (fan-out).  Nodes that cannot reach a tensor we want a gradient for are skipped, and so
are non-differentiable ops (``sign``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .backend import Backend, select, to_numpy
from .errors import DataError, did_you_mean, known
from .graph import Graph
from .init import initialize
from .limits import short
from .ops.base import Context, fmt_shape
from .shapes import BindError, batch_shapes, bind_dims, bound_shapes

FLOAT_DTYPES = ("float32", "float64")


@dataclass(slots=True)
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


def plain_context(training, rng, needs_input_grad, owns_outputs):
    """The context a plain op runs with (``owns_outputs`` is for kernels that can use it)."""
    return Context(training, rng, needs_input_grad)


@dataclass(frozen=True, slots=True)
class Step:
    """One op call of the plan: which tensors it reads and writes, and what it may release.

    ``needs`` says which inputs need a gradient; ``free`` lists tensors whose last forward
    use is this step (released when a pass does not keep its values).
    """

    name: str
    op: object
    inputs: tuple
    outputs: tuple
    needs: tuple = ()
    sends: tuple = ()  # (position, tensor) of each input that needs a gradient
    free: tuple = ()
    private: bool = False  # no output is kept: a pass that releases values may let backward
    #                        overwrite them (the outputs' readers have run their backward)
    context: Callable = plain_context  # (training, rng, needs, owns_outputs) -> the op's ctx


class Executor:
    """A graph planned once for repeated passes on one backend.

    The plan fixes the schedule and each step's op, prunes gradient work to what reaches the
    wanted tensors (``wrt``: default the params, ``"all"`` every float tensor), and knows when
    each value is last used so passes that do not keep values release them early.  Forward
    values that backward needs live on in the ops' contexts, and only there.

    ``rewrites`` come from the caller: each ``rewrite(graph, steps, keep, wanted)`` returns new
    steps (the training plan hands in :mod:`minigraph.kernels`' fusions and faster op
    implementations).  Without them every step is one node's plain op.
    """

    def __init__(self, graph: Graph, backend: Backend | None = None, dtype: str = "float32",
                 wrt=None, keep=(), rewrites=()):
        self.graph = graph
        self.backend = backend or select("numpy")
        self.xp = self.backend.xp
        self.dtype = dtype
        self.rewrites = tuple(rewrites)
        self.keep = set(keep) | set(graph.outputs) | ({graph.loss} if graph.loss else set())
        self.set_wrt(wrt)
        self._bound: dict = {}  # binding -> every tensor's shape (check_sizes)
        self.constants = {
            name: self.backend.asarray(np.asarray(c.value, dtype=c.dtype or dtype))
            for name, c in graph.spec.constants.items()
        }

    def set_wrt(self, wrt=None):
        """Choose which tensors get gradients, and plan the steps for that choice."""
        g = self.graph
        if wrt == "all":
            wanted = {t for t, info in g.tensors.items() if info.dtype in FLOAT_DTYPES}
        elif wrt is None:
            wanted = set(g.params)
        else:
            wanted = set(wrt)
        steps = [Step(n.name, n.op, tuple(n.inputs), tuple(n.outputs)) for n in g.nodes]
        for rewrite in self.rewrites:
            steps = rewrite(g, steps, self.keep, wanted)
        # a tensor "requires grad" when it is wanted or is computed from a wanted tensor
        requires = set(wanted)
        for step in steps:
            if step.op.differentiable and any(t in requires for t in step.inputs):
                requires.update(step.outputs)
        last_use = {}
        for i, step in enumerate(steps):
            for t in step.inputs:
                last_use[t] = i
        planned = []
        for i, step in enumerate(steps):
            free = tuple(t for t in dict.fromkeys(step.inputs)
                         if last_use[t] == i and t in g.tensors and g.tensors[t].kind == "node"
                         and t not in self.keep)
            planned.append(Step(step.name, step.op, step.inputs, step.outputs,
                                tuple(t in requires for t in step.inputs),
                                tuple((i, t) for i, t in enumerate(step.inputs)
                                      if t in requires),
                                free, not self.keep.intersection(step.outputs),
                                step.context))
        self.wanted = wanted
        self.requires = requires
        self.steps = planned
        self.backward_steps = [s for s in reversed(planned)
                               if s.op.differentiable and s.outputs[-1] in requires]

    # -- feeds ------------------------------------------------------------------------------
    def _input_loc(self, name):
        return self.graph.spec.at("inputs", name)

    def check_feeds(self, feeds: dict, *, infer: bool = True) -> dict:
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
        arrays = {}
        for name, spec in inputs.items():
            if name not in feeds:
                continue
            array = feeds[name]
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
            arrays[name] = array
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
        bindings = {symbol: size for symbol, (size, _) in bound.items()}
        if infer:
            self.check_sizes(bindings)
        out = {}
        for name, array in arrays.items():
            spec = inputs[name]
            dtype = self.dtype if spec.real_dtype in FLOAT_DTYPES else spec.real_dtype
            out[name] = self.backend.asarray(array, dtype=dtype)
        return out, bindings

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
        inputs = self.graph.inputs
        declared = {n: s.shape for n, s in inputs.items()}
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

    # -- passes -----------------------------------------------------------------------------
    def forward(self, params: dict, feeds: dict, *, training: bool = False, rng=None,
                checked: bool = False, keep_values: bool = True) -> Pass:
        """Run every step in order; ``keep_values=False`` releases values after last use."""
        if checked:
            bindings = {}
        else:
            self.missing_feeds(feeds)
            feeds, bindings = self.check_feeds(feeds)
        values = {**feeds, **self.constants, **params}
        ctxs = {}
        release = not keep_values
        for step in self.steps:
            ctx = ctxs[step.name] = step.context(training, rng, step.needs,
                                                 release and step.private)
            # Direct calls for the usual input counts: Python runs them in its own loop, where
            # f(ctx, *args) would build a tuple and start a new one (~3% of an XOR step).
            xs = step.inputs
            if len(xs) == 3:
                y = step.op.forward(ctx, values[xs[0]], values[xs[1]], values[xs[2]])
            elif len(xs) == 2:
                y = step.op.forward(ctx, values[xs[0]], values[xs[1]])
            elif len(xs) == 1:
                y = step.op.forward(ctx, values[xs[0]])
            else:
                y = step.op.forward(ctx, *[values[t] for t in xs])
            if len(step.outputs) == 1:
                values[step.outputs[0]] = y
            else:
                values.update(zip(step.outputs, y))
            if release:
                for t in step.free:
                    del values[t]
        return Pass(values, ctxs, {}, bindings)

    def backward(self, run: Pass, loss: str | None = None, keep_all: bool = True) -> dict:
        """Gradients of ``loss`` w.r.t. the wanted tensors (every visited one if ``keep_all``).

        Without ``keep_all``, a gradient is dropped once its producer has used it, and each
        step's saved values are released after its backward.
        """
        loss = loss or self.graph.loss
        if loss is None:
            raise DataError("the model has no 'loss', so there is nothing to differentiate")
        seed = run.values[loss]  # d(loss)/d(loss) = 1, shaped like the loss (a scalar: shape ())
        grads = {loss: self.xp.asarray(1, dtype=seed.dtype) if seed.ndim == 0
                 else self.xp.ones(seed.shape, dtype=seed.dtype)}
        wanted, ctxs = self.wanted, run.ctxs
        for step in self.backward_steps:
            out = step.outputs[-1]
            # an intermediate gradient is dropped once its producer has used it
            gy = grads.get(out) if keep_all or out in wanted else grads.pop(out, None)
            if gy is None:
                continue
            gxs = step.op.backward(ctxs[step.name], gy)
            if len(gxs) != len(step.inputs):
                raise RuntimeError(f"op '{step.op.name}' returned {len(gxs)} gradients for "
                                   f"{len(step.inputs)} inputs")
            if not keep_all:
                ctxs[step.name] = None  # release what forward saved for this step
            for i, t in step.sends:
                g = gxs[i]
                if g is not None:
                    grads[t] = g if t not in grads else grads[t] + g
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

    def locate_nonfinite(self, params: dict, batch: dict, rng=None):
        """Re-run one batch unfused, keeping every value, to find the first bad node."""
        plain = Executor(self.graph, self.backend, self.dtype)
        return plain.first_nonfinite(plain.forward(params, batch, training=True, rng=rng,
                                                   checked=True))


def as_numpy(mapping: dict) -> dict:
    """Copy every array of a name -> array dict to the host."""
    return {k: to_numpy(v) for k, v in mapping.items()}
