"""The executor: a graph planned once (:mod:`.plan`), then run many times (:mod:`.run`)."""
from __future__ import annotations

import numpy as np

from ..backend import Backend, select
from ..graph import Graph
from . import run as runs
from .feeds import FeedChecker
from .plan import make_plan, wanted_tensors
from .run import Pass


class Executor:
    """A graph planned once for repeated passes on one backend.

    The plan fixes the schedule and each step's op, prunes gradient work to what reaches the
    wanted tensors (``wrt``: default the params, ``"all"`` every float tensor), and knows when
    each value is last used so passes that do not keep values release them early.  Forward
    values that backward needs live on in the ops' contexts, and only there.

    ``rewrites`` come from the caller: each ``rewrite(graph, steps, keep, wanted)`` returns new
    steps (the training plan hands in :mod:`minigraph.kernels`' fusions and faster op
    implementations).  Without them every step is one node's plain op.

    The plan is made by :func:`.plan.make_plan`; ``forward`` and ``backward`` are the two
    loops of :mod:`.run`, and the feed checks are a :class:`.feeds.FeedChecker`'s.
    """

    def __init__(self, graph: Graph, backend: Backend | None = None, dtype: str = "float32",
                 wrt=None, keep=(), rewrites=()):
        self.graph = graph
        self.backend = backend or select("numpy")
        self.xp = self.backend.xp
        self.dtype = dtype
        self.rewrites = tuple(rewrites)
        self.keep = set(keep) | set(graph.outputs) | ({graph.loss} if graph.loss else set())
        self.feeds = FeedChecker(graph, self.backend, dtype)
        self._seeds = {}  # (shape, dtype) -> the ones that start backward, see seed()
        self.set_wrt(wrt)
        self.constants = {
            name: self.backend.asarray(np.asarray(c.value, dtype=c.dtype or dtype))
            for name, c in graph.spec.constants.items()
        }

    def set_wrt(self, wrt=None):
        """Choose which tensors get gradients, and plan the steps for that choice."""
        plan = make_plan(self.graph, wanted_tensors(self.graph, wrt), self.keep, self.rewrites)
        self.wanted = plan.wanted
        self.requires = plan.requires
        self.steps = plan.steps
        self.backward_steps = plan.backward_steps

    # -- feeds (see FeedChecker) ------------------------------------------------------------
    def check_feeds(self, feeds: dict, *, infer: bool = True):
        """``(feeds on the device, {symbol: size})``; see :meth:`FeedChecker.check_feeds`."""
        return self.feeds.check_feeds(feeds, infer=infer)

    def missing_feeds(self, feeds: dict):
        """A located DataError when ``feeds`` lacks one of the model's inputs."""
        self.feeds.missing_feeds(feeds)

    def check_sizes(self, bindings: dict) -> dict:
        """Every tensor's shape with ``bindings``; see :meth:`FeedChecker.check_sizes`."""
        return self.feeds.check_sizes(bindings)

    def check_batches(self, arrays: dict, sizes) -> None:
        """Check every batch size cut from ``arrays``; see :meth:`FeedChecker.check_batches`."""
        self.feeds.check_batches(arrays, sizes)

    # -- passes: the two loops of run.py, as methods ---------------------------------------
    forward = runs.forward
    backward = runs.backward

    def seed(self, loss):
        """d(loss)/d(loss) = 1 shaped like the loss (a scalar: shape ()): an array of ones
        made once per shape and dtype, read-only where the backend allows."""
        key = (loss.shape, loss.dtype)
        ones = self._seeds.get(key)
        if ones is None:
            ones = self._seeds[key] = self.xp.ones(loss.shape, dtype=loss.dtype)
            if isinstance(ones, np.ndarray):
                ones.flags.writeable = False  # an op that wrote into dL/dL would fail here
        return ones

    def first_nonfinite(self, run: Pass):
        """The first node (in schedule order) whose output holds NaN or inf, or None."""
        return runs.first_nonfinite(self.graph, run, self.xp)

    def locate_nonfinite(self, params: dict, batch: dict, rng=None):
        """Re-run one batch unfused, keeping every value, to find the first bad node."""
        plain = Executor(self.graph, self.backend, self.dtype)
        return plain.first_nonfinite(plain.forward(params, batch, training=True, rng=rng,
                                                   checked=True))
