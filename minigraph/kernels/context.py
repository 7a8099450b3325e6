"""The context a kernel runs with: the plain op context plus what speed needs."""
from __future__ import annotations

from ..ops.base import Context


class KernelContext(Context):
    """A :class:`~minigraph.ops.base.Context` with the plan's memory helpers.

    ``workspace`` lends ``empty`` arrays reused across steps (see :mod:`.memory`);
    ``owns_outputs`` says that nobody else keeps what forward returned, so backward may
    overwrite it (its readers are done: they come later in forward, earlier in backward);
    ``grad_into`` holds, per input, an array to write that input's gradient into (or None):
    the optimizer's flat gradient buffer for params only this step reads.
    """

    __slots__ = ("workspace", "owns_outputs", "grad_into")

    def __init__(self, training=False, rng=None, needs_input_grad=(), owns_outputs=False,
                 workspace=None, grad_into=(None, None, None, None)):
        # the plain fields set here rather than through Context.__init__: one Python call
        # less on every step of every training pass
        self.saved = None
        self.training = training
        self.rng = rng
        self.needs_input_grad = needs_input_grad
        self.workspace = workspace
        self.owns_outputs = owns_outputs
        self.grad_into = grad_into

    def empty(self, xp, shape, dtype):
        """An uninitialised array to fill (from the workspace when the plan has one)."""
        if self.workspace is None:
            return xp.empty(shape, dtype=dtype)
        return self.workspace.empty(xp, shape, dtype)

    def part(self, needs_input_grad):
        """A context for one part of a fused op: same run, its own saved values."""
        return KernelContext(self.training, self.rng, needs_input_grad,
                             workspace=self.workspace)
