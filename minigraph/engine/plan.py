"""Planning a pass: which op runs at each step, what needs a gradient, when a value dies.

A plan is made once per executor (and again when the wanted gradients change) and then run
many times by :mod:`minigraph.engine.run` -- as tinygrad's ``schedule.py`` makes the list of
work that ``realize.py`` runs.  Planning has four parts:

1. one :class:`Step` per node, in the graph's schedule order;
2. the caller's ``rewrites``, each ``rewrite(graph, steps, keep, wanted) -> steps`` (the
   training plan hands in :mod:`minigraph.kernels`' fusions and faster implementations of the
   same rules; without rewrites every step is one node's plain op);
3. gradient pruning: a tensor *requires* a gradient when it is wanted or is computed, by a
   differentiable op, from one that requires it; backward visits only the steps whose output
   requires one, and each step's op is told which of its inputs do (``needs``);
4. last use: the step after which a computed value is read no more (``free``), so a pass that
   does not keep its values can release it early.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..graph import Graph
from ..ops.base import Context

FLOAT_DTYPES = ("float32", "float64")


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


@dataclass(frozen=True)
class Plan:
    """The steps of a forward pass in order, and those backward visits, in reverse order."""

    steps: list
    backward_steps: list
    wanted: set  # the tensors whose gradients are asked for
    requires: set  # the wanted tensors and every tensor computed from them


def wanted_tensors(graph: Graph, wrt=None) -> set:
    """The tensors to differentiate for: the params (``None``), every float tensor
    (``"all"``), or the given names."""
    if wrt == "all":
        return {t for t, info in graph.tensors.items() if info.dtype in FLOAT_DTYPES}
    if wrt is None:
        return set(graph.params)
    return set(wrt)


def make_plan(graph: Graph, wanted: set, keep: set, rewrites=()) -> Plan:
    """Plan ``graph``'s steps for gradients of ``wanted``; values in ``keep`` are never freed."""
    steps = [Step(n.name, n.op, tuple(n.inputs), tuple(n.outputs)) for n in graph.nodes]
    for rewrite in rewrites:
        steps = rewrite(graph, steps, keep, wanted)
    requires = requiring_grad(steps, wanted)
    last_use = {}
    for i, step in enumerate(steps):
        for t in step.inputs:
            last_use[t] = i
    planned = []
    for i, step in enumerate(steps):
        free = tuple(t for t in dict.fromkeys(step.inputs)
                     if last_use[t] == i and t in graph.tensors
                     and graph.tensors[t].kind == "node" and t not in keep)
        planned.append(Step(step.name, step.op, step.inputs, step.outputs,
                            tuple(t in requires for t in step.inputs),
                            tuple((i, t) for i, t in enumerate(step.inputs) if t in requires),
                            free, not keep.intersection(step.outputs), step.context))
    backward_steps = [s for s in reversed(planned)
                      if s.op.differentiable and s.outputs[-1] in requires]
    return Plan(planned, backward_steps, wanted, requires)


def requiring_grad(steps, wanted: set) -> set:
    """A tensor "requires grad" when it is wanted or is computed from a wanted tensor."""
    requires = set(wanted)
    for step in steps:
        if step.op.differentiable and any(t in requires for t in step.inputs):
            requires.update(step.outputs)
    return requires
