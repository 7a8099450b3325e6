"""A training step's forward and backward loops, with each step's context made once.

:mod:`minigraph.engine.run` is the readable form of the two loops: a fresh context for each
step of each pass, and options for every caller (checked feeds or not, values kept or not,
every gradient kept or not).  A training step asks the same thing every time -- trusted
feeds, training mode, values released after their last use, only the wanted gradients kept --
so :class:`TrainingPasses` runs exactly those loops, with the same steps in the same order
and the same op calls (so the same numbers, bit for bit; ``tests/test_kernels.py`` checks
it), and saves only the bookkeeping: each step's context is made when the plan is, and
reused by every pass (only its ``rng`` changes).  On a network as small as XOR that
bookkeeping is a tenth of the step.  Any other kind of pass goes to the executor's own loops.
"""
from __future__ import annotations

from ..engine.run import Pass


class TrainingPasses:
    """``forward`` and ``backward`` with the executor's signatures, for training steps."""

    def __init__(self, executor):
        self.executor = executor
        self._steps = None  # the plan the loops below were made for (set_wrt makes another)
        self.ctxs = None

    def _prepare(self):
        """Each step's context, and the loops' per-step tuples, for the executor's plan."""
        ex = self.executor
        self._steps, self.loss, self.wanted = ex.steps, ex.graph.loss, ex.wanted
        self.ctxs = {s.name: s.context(True, None, s.needs, s.private) for s in ex.steps}
        # (forward, its context, input names, output name(s), one output?, values to free)
        self.forward_steps = [(s.op.forward, self.ctxs[s.name], s.inputs,
                               s.outputs[0] if len(s.outputs) == 1 else s.outputs,
                               len(s.outputs) == 1, s.free) for s in ex.steps]
        # (backward, its context, the output whose gradient it reads, whether that gradient
        # is wanted (kept), the first gradients of tensors (positions, names), the gradients
        # added to one already there (fan-out), op name, number of inputs)
        self.backward_steps = []
        seen = {self.loss}
        for s in ex.backward_steps:
            first, added = [], []
            for i, t in s.sends:
                (added if t in seen else first).append((i, t))
                seen.add(t)
            positions, names = tuple(zip(*first)) or ((), ())
            self.backward_steps.append((s.op.backward, self.ctxs[s.name], s.outputs[-1],
                                        s.outputs[-1] in ex.wanted, positions, names, tuple(added),
                                        s.op.name, len(s.inputs)))

    def forward(self, params: dict, feeds: dict, *, training=False, rng=None, checked=False,
                keep_values=True) -> Pass:
        if not (training and checked and not keep_values):
            return self.executor.forward(params, feeds, training=training, rng=rng,
                                         checked=checked, keep_values=keep_values)
        if self._steps is not self.executor.steps:
            self._prepare()
        values = {**feeds, **self.executor.constants, **params}
        read = values.__getitem__
        for forward, ctx, inputs, out, single, free in self.forward_steps:
            ctx.rng = rng
            y = forward(ctx, *map(read, inputs))
            if single:
                values[out] = y
            else:
                values.update(zip(out, y))
            for t in free:
                del values[t]
        return Pass(values, self.ctxs)

    def backward(self, run: Pass, loss: str | None = None, keep_all: bool = True) -> dict:
        ex = self.executor
        if keep_all or run.ctxs is not self.ctxs or self.loss is None \
                or loss not in (None, self.loss):
            return ex.backward(run, loss, keep_all)
        grads = {self.loss: ex.seed(run.values[self.loss])}  # d(loss)/d(loss) = 1
        keep, take = grads.get, grads.pop
        for backward, ctx, out, kept, positions, names, added, op, arity in self.backward_steps:
            # an intermediate gradient is dropped once its producer has used it
            gy = keep(out) if kept else take(out, None)
            if gy is None:
                continue
            gxs = backward(ctx, gy)
            ctx.saved = None  # release what forward saved for this step
            if len(gxs) != arity:
                raise RuntimeError(f"op '{op}' returned {len(gxs)} gradients for {arity} "
                                   "inputs")
            grads.update(zip(names, map(gxs.__getitem__, positions)))  # (None: no gradient)
            for i, t in added:  # fan-out: a tensor read by several steps gets their sum
                g, before = gxs[i], keep(t)
                grads[t] = before if g is None else g if before is None else before + g
        run.grads = grads
        return grads
