"""Running a plan: the forward loop and the backward loop.

The runtime state of a pass is one dict from tensor name to array (``Pass.values``), filled in
plan order: each step reads its inputs by name and writes its outputs by name.  Backward seeds
d(loss)/d(loss) = 1 and walks the plan in reverse; each op's local rule returns one gradient
per input (checked), and gradients of a tensor read by several steps are summed (fan-out).
Steps that cannot reach a tensor we want a gradient for were left out by the plan, and so
were non-differentiable ops (``sign``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DataError


@dataclass(slots=True)
class Pass:
    """One forward (and maybe backward) pass: values and gradients by tensor name."""

    values: dict
    ctxs: dict = field(default_factory=dict)
    grads: dict = field(default_factory=dict)
    bindings: dict = field(default_factory=dict)  # symbolic dimension -> size


def forward(executor, params: dict, feeds: dict, *, training: bool = False, rng=None,
            checked: bool = False, keep_values: bool = True) -> Pass:
    """Run every step of the executor's plan in order, filling one dict of values.

    ``checked=True`` trusts ``feeds`` (already through ``check_feeds``); ``keep_values=False``
    releases each value after its last use (``step.free``).  Each step's context keeps what
    its op's backward needs.  (:class:`~.executor.Executor` has this as its ``forward``.)
    """
    if checked:
        bindings = {}
    else:
        executor.missing_feeds(feeds)
        feeds, bindings = executor.check_feeds(feeds)
    values = {**feeds, **executor.constants, **params}
    ctxs = {}
    release = not keep_values
    for step in executor.steps:
        ctx = ctxs[step.name] = step.context(training, rng, step.needs,
                                             release and step.private)
        y = step.op.forward(ctx, *[values[t] for t in step.inputs])
        if len(step.outputs) == 1:
            values[step.outputs[0]] = y
        else:
            values.update(zip(step.outputs, y))
        if release:
            for t in step.free:
                del values[t]
    return Pass(values, ctxs, {}, bindings)


def backward(executor, run: Pass, loss: str | None = None, keep_all: bool = True) -> dict:
    """Gradients of ``loss`` (default: the model's) w.r.t. the wanted tensors, walking the
    plan's backward steps (every visited tensor's gradient if ``keep_all``).

    Without ``keep_all``, a gradient is dropped once its producer has used it (the wanted
    ones stay), and each step's saved values are released after its backward.
    (:class:`~.executor.Executor` has this as its ``backward``.)
    """
    loss = loss or executor.graph.loss
    if loss is None:
        raise DataError("the model has no 'loss', so there is nothing to differentiate")
    grads = {loss: executor.seed(run.values[loss])}  # d(loss)/d(loss) = 1
    wanted, ctxs = executor.wanted, run.ctxs
    for step in executor.backward_steps:
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
                grads[t] = g if t not in grads else grads[t] + g  # fan-out: sum
    run.grads = grads
    return grads


def first_nonfinite(graph, run: Pass, xp):
    """The first node (in schedule order) whose output holds NaN or inf, or None."""
    for node in graph.nodes:
        value = run.values.get(node.outputs[0])
        if value is not None and not bool(xp.all(xp.isfinite(value))):
            return node
    return None
