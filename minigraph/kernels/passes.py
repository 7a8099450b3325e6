"""A training step's forward and backward loops, written out once per plan as Python code.

:mod:`minigraph.engine.run` is the readable form of the two loops: for every step of every
pass it makes a context, looks each input up in a dict by name, stores each output by name,
and keeps the gradients in a dict too.  A training step runs the same plan thousands of
times, and on a network as small as XOR that bookkeeping costs about a fifth of the step.
So the training plan writes the two loops out, unrolled, as two small Python functions --
one line per op call, each tensor a local variable -- as :mod:`dataclasses` and
:func:`collections.namedtuple` write their methods.  For XOR (``TrainingPasses.source``)::

    def forward(values, rng):             # x, W1, b1, W2, b2, t -> t0 ... t5
        t0 = values[n0]
        ...
        c6.rng = rng
        t6 = f7(c6, t0, t1, t2)              # h = linear+sigmoid(x, W1, b1)
        c8.rng = rng
        y = f9(c8, t6, t3, t4, t5)           # y, L = linear+sigmoid+bce(h, W2, b2, t)
        t7 = y[0]
        t8 = y[1]
        values[n10] = t7                     # kept: the output and the loss
        values[n11] = t8
        del t6                               # h: its last use
        return values

The functions call the same ops, with the same arguments, in the same order, as the
executor's loops (so they compute the same numbers, bit for bit: ``tests/test_passes.py``),
and each step's context is made once, with the plan.  The code holds only names made here
(``t0``, ``g1``, ``f2``, ...): the model's tensor names reach it as values in its namespace,
never as text, so nothing from a model file becomes code.  Any other kind of pass (not
training, values kept, every gradient kept) goes to the executor's own loops.
"""
from __future__ import annotations

from ..engine.run import Pass


class TrainingPasses:
    """``forward`` and ``backward`` with the executor's signatures, for training steps."""

    def __init__(self, executor):
        self.executor = executor
        self._steps = None  # the plan the code below was written for (set_wrt makes another)
        self.ctxs, self.loss = None, None
        self.source = ""

    def _prepare(self):
        """Each step's context, and the two functions, for the executor's current plan."""
        ex = self.executor
        self._steps, self.loss = ex.steps, ex.graph.loss
        self.ctxs = {s.name: s.context(True, None, s.needs, s.private) for s in ex.steps}
        code = _Code(ex, self.ctxs)
        sources = [code.forward()] + ([code.backward()] if self.loss else [])
        namespace = dict(code.namespace, _bad_arity=_bad_arity, _plus=_plus)
        for source in sources:  # one at a time: compiling holds about 100x the source's size
            exec(compile(source, "<minigraph training passes>", "exec"), namespace)
        self.source = "\n".join(sources)
        self._forward, self._backward = namespace["forward"], namespace.get("backward")

    def forward(self, params: dict, feeds: dict, *, training=False, rng=None, checked=False,
                keep_values=True) -> Pass:
        if not (training and checked and not keep_values):
            return self.executor.forward(params, feeds, training=training, rng=rng,
                                         checked=checked, keep_values=keep_values)
        if self._steps is not self.executor.steps:
            self._prepare()
        values = {**feeds, **self.executor.constants, **params}
        self._forward(values, rng)
        return Pass(values, self.ctxs, {}, {})

    def backward(self, run: Pass, loss: str | None = None, keep_all: bool = True) -> dict:
        if keep_all or run.ctxs is not self.ctxs or self.loss is None \
                or loss not in (None, self.loss):
            return self.executor.backward(run, loss, keep_all)
        run.grads = grads = self._backward(run.values, self.executor.seed)
        return grads


def _bad_arity(op: str, got, arity: int):
    raise RuntimeError(f"op '{op}' returned {len(got)} gradients for {arity} inputs")


def _plus(total, g):
    """A fan-out sum of gradients, None meaning none yet (or none sent)."""
    return total if g is None else g if total is None else total + g


class _Code:
    """The source of the two functions for one plan, and the names they use."""

    def __init__(self, ex, ctxs: dict):
        self.ex, self.ctxs = ex, ctxs
        self.namespace: dict = {}
        self.locals: dict = {}  # tensor name -> its local variable's number

    def name(self, prefix: str, value) -> str:
        """A new name for ``value`` in the functions' namespace."""
        key = f"{prefix}{len(self.namespace)}"
        self.namespace[key] = value
        return key

    def local(self, tensor: str) -> str:
        if tensor not in self.locals:
            self.locals[tensor] = len(self.locals)
        return f"t{self.locals[tensor]}"

    def forward(self) -> str:
        """Read the inputs of the pass, call each step's forward, free each value after its
        last use, and store the values a pass keeps back into ``values``."""
        steps = self.ex.steps
        made = {t for s in steps for t in s.outputs}
        freed = {t for s in steps for t in s.free}
        lines = ["def forward(values, rng):"]
        for t in dict.fromkeys(t for s in steps for t in s.inputs if t not in made):
            lines.append(f"    {self.local(t)} = values[{self.name('n', t)}]")
        for s in steps:
            ctx, args = self.name("c", self.ctxs[s.name]), ", ".join(map(self.local, s.inputs))
            lines.append(f"    {ctx}.rng = rng")
            call = f"{self.name('f', s.op.forward)}({ctx}{', ' if args else ''}{args})"
            if len(s.outputs) == 1:
                lines.append(f"    {self.local(s.outputs[0])} = {call}")
            else:
                lines.append(f"    y = {call}")
                lines += [f"    {self.local(t)} = y[{i}]" for i, t in enumerate(s.outputs)]
            lines += [f"    values[{self.name('n', t)}] = {self.local(t)}"
                      for t in s.outputs if t not in freed]
            if s.free:
                lines.append(f"    del {', '.join(self.local(t) for t in s.free)}")
        return "\n".join(lines + ["    return values"]) + "\n"

    def backward(self) -> str:
        """Seed d(loss)/d(loss), call each backward step's rule when its output has a
        gradient, add up fan-out, and return the gradients a pass keeps, as the executor."""
        ex, loss = self.ex, self.ex.graph.loss
        grads = {loss: "g0"}  # tensor -> its gradient's local, in order of first arrival
        dropped = set()  # gradients dropped once their producer has used them
        body = [f"    g0 = seed(values[{self.name('n', loss)}])"]
        for s in ex.backward_steps:
            out = s.outputs[-1]
            gy = grads.get(out)
            if gy is None:
                continue  # nothing ever sends this step a gradient
            ctx = self.name("c", self.ctxs[s.name])
            body += [f"    if {gy} is not None:",
                     f"        r = {self.name('b', s.op.backward)}({ctx}, {gy})",
                     f"        {ctx}.saved = None",
                     f"        if len(r) != {len(s.inputs)}:",
                     f"            _bad_arity({self.name('n', s.op.name)}, r, {len(s.inputs)})"]
            for i, t in s.sends:
                if t in grads:
                    body.append(f"        {grads[t]} = _plus({grads[t]}, r[{i}])")
                else:
                    grads[t] = f"g{len(grads)}"
                    body.append(f"        {grads[t]} = r[{i}]")
            if out not in ex.wanted:
                dropped.add(out)
                body.append(f"        {gy} = None")
        head = ["def backward(values, seed):"]
        if len(grads) > 1:
            head.append(f"    {' = '.join(list(grads.values())[1:])} = None")
        tail = ["    grads = {}"]
        for t, g in grads.items():
            if t not in dropped:
                tail += [f"    if {g} is not None:", f"        grads[{self.name('n', t)}] = {g}"]
        return "\n".join(head + body + tail + ["    return grads"]) + "\n"
