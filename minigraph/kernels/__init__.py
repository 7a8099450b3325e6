"""Everything in minigraph that exists only for speed, kept apart from the rules that teach.

``ops/`` holds one plain rule per op; that rule is what ``check``, ``render --grads`` and
``Model`` run, and -- kernels or not -- what trains.  This package holds faster ways to compute
the same numbers, and only the training plan asks for them, from outside (as the ONNX
reference evaluator swaps in its ``ops_optimized``): ``ops/``, ``graph`` and ``engine``
never import it.

* ``fusion.py`` / ``fused.py``: chains of ops run as one fused op (conv -> relu -> pool,
  matmul -> add [-> activation], flatten -> matmul -> add, sigmoid -> bce, log_softmax -> nll).
* ``conv_nhwc.py``: conv2d with a channels-last output and max pooling over tiles.
* ``losses.py``: cross_entropy with class indices the way a hand-written step does it.
* ``memory.py``: large buffers reused from one training step to the next.
* ``packed.py``: params in one flat array and the optimizer's update on it in one go.
* ``passes.py``: a training step's two loops, with each step's context made once.
* ``blas.py``: BLAS column sums and cached constants.

Each kernel computes what the plain chain computes, to rounding; ``tests/test_kernels.py``
checks that on ordinary and extreme inputs.  ``MINIGRAPH_KERNELS=0`` (or ``kernels=False``
for a :class:`~minigraph.train.Trainer`) turns them all off: the plain rules then train, slower,
to the same results.
"""
from __future__ import annotations

import collections
import functools
import os

from ..engine.plan import Step
from ..errors import MinigraphError
from .context import KernelContext
from .conv_nhwc import Conv2DChannelsLast
from .fusion import fuse_chains
from .losses import CrossEntropyRows
from .memory import Workspace
from .packed import FlatUpdate, pack_params
from .passes import TrainingPasses

# Faster implementations of registered ops, by op name: each takes the plain op (its
# attributes) and computes the same rule.
FASTER = {
    "conv2d": Conv2DChannelsLast,
    "cross_entropy": CrossEntropyRows,
}


def enabled(flag=None) -> bool:
    """Whether training uses kernels: ``flag`` if given, else ``$MINIGRAPH_KERNELS`` (default
    on; ``0``, ``false``, ``no`` or ``off`` turn them off)."""
    if flag is not None:
        return bool(flag)
    value = os.environ.get("MINIGRAPH_KERNELS", "1").strip().lower()
    if value in ("1", "true", "yes", "on", ""):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise MinigraphError(f"MINIGRAPH_KERNELS must be 1 or 0, got {value!r}")


class TrainingKernels:
    """The training plan's rewrite: fuse chains, then swap in faster implementations.

    One instance per plan: its steps share one :class:`~.memory.Workspace`, and run with a
    :class:`~.context.KernelContext` that lends its buffers.  Once the optimizer's flat
    update has its gradient buffer, :meth:`give_grad_buffers` tells each step where to write
    the gradients of the params that it alone reads, so they need no copying there.
    """

    def __init__(self):
        self.workspace = Workspace()
        self.grad_buffers: dict = {}  # param -> its view of the flat gradient buffer
        self._slots: list = []  # (a step's grad_into list, input position, param)

    def __call__(self, graph, steps, keep, wanted) -> list:
        steps = list(fuse_chains(graph, steps, keep, wanted))
        readers = collections.Counter(t for step in steps for t in step.inputs)
        self._slots = []
        out = []
        for step in steps:
            op = step.op
            faster = FASTER.get(op.name)
            if faster is not None:
                op = faster(op)
            into = [None] * len(step.inputs)  # where to write each input's gradient
            self._slots += [(into, i, t) for i, t in enumerate(step.inputs)
                            if t in graph.params and readers[t] == 1]
            # (training, rng, needs_input_grad, owns_outputs) -> a context lending our buffers
            context = functools.partial(KernelContext, workspace=self.workspace, grad_into=into)
            out.append(Step(step.name, op, step.inputs, step.outputs, context=context))
        self.give_grad_buffers(self.grad_buffers)
        return out

    def give_grad_buffers(self, buffers: dict) -> None:
        """Where each param's gradient should be written from now on (name -> array)."""
        self.grad_buffers = dict(buffers)
        for into, i, name in self._slots:
            into[i] = self.grad_buffers.get(name)


def training_rewrites(flag=None) -> tuple:
    """The rewrites a training plan hands the engine: the kernels, or none when disabled."""
    return (TrainingKernels(),) if enabled(flag) else ()


def _kernels_of(rewrites):
    """The :class:`TrainingKernels` among a plan's ``rewrites``, or None."""
    return next((r for r in rewrites if isinstance(r, TrainingKernels)), None)


def training_update(optimizer, rewrites=()):
    """The optimizer step of a training plan made with ``rewrites``: with the kernels, a
    flat update that tells them where its gradient buffer is (so they fill it directly);
    without them, the optimizer's own per-param ``step``."""
    kernels = _kernels_of(rewrites)
    if kernels is None:
        return optimizer
    return FlatUpdate(optimizer, on_grad_buffer=kernels.give_grad_buffers)


def training_passes(executor, rewrites=()):
    """What runs a training step's forward and backward: with the kernels, the two loops
    written out for the plan (:class:`.passes.TrainingPasses`); without, the executor's own."""
    return executor if _kernels_of(rewrites) is None else TrainingPasses(executor)


__all__ = ["FASTER", "FlatUpdate", "TrainingKernels", "enabled", "pack_params",
           "training_passes", "training_rewrites",
           "training_update"]
