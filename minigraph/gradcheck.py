"""Numerical gradient check: compare backward with float64 central differences.

    dL/dp[i]  ~  (L(p + eps e_i) - L(p - eps e_i)) / (2 eps)

Used by ``minigraph check`` on whole models (every param, a bounded seeded sample of the
elements of each by default), and by the op tests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .backend import select, to_numpy
from .engine import Executor, init_params


@dataclass
class GradCheck:
    """The check of one param: worst absolute and relative error over the checked elements.

    ``checked`` elements of ``size`` were perturbed one at a time; the row named
    :data:`ALL_PARAMS` is the directional check that covers every element of every param.
    """

    param: str
    shape: tuple
    checked: int
    max_abs: float
    max_rel: float
    ok: bool
    size: int = 0


ALL_PARAMS = "(all params)"
MAX_ELEMENTS = 20   # elements perturbed per param by default (all of a smaller param)
MAX_TOTAL = 240     # elements perturbed in all by default: the check's cost is linear in depth


def central_difference(f, x, index, eps: float = 1e-6) -> float:
    """(f() with x[index] + eps  -  f() with x[index] - eps) / (2 eps); x is restored."""
    old = x[index]
    x[index] = old + eps
    up = f()
    x[index] = old - eps
    down = f()
    x[index] = old
    return (up - down) / (2 * eps)


def sample_elements(params: dict, rng, max_elements: int | None, max_total: int | None) -> dict:
    """Which flat indices of each param to perturb: all of them (``max_elements`` None), else a
    seeded sample of up to ``max_elements`` per param, fewer per param when the params are so
    many that more than ``max_total`` would be perturbed (then at least one each, while the
    budget lasts, in a seeded order)."""
    sizes = {name: int(np.size(v)) for name, v in params.items()}
    if max_elements is None:
        return {name: np.arange(n) for name, n in sizes.items()}
    quota = {name: min(n, max_elements) for name, n in sizes.items()}
    if max_total is not None and sum(quota.values()) > max_total:
        names = list(params)
        order = [names[i] for i in rng.permutation(len(names))]
        each = max(max_total // max(len(names), 1), 1)
        left, quota = max_total, {}
        for name in order:
            quota[name] = min(sizes[name], max_elements, each, left)
            left -= quota[name]
    return {name: np.sort(rng.choice(sizes[name], quota[name], replace=False))
            if quota[name] < sizes[name] else np.arange(sizes[name]) for name in params}


def check_gradients(graph, feeds: dict, params: dict | None = None, *, seed: int = 0,
                    eps: float = 1e-6, rtol: float = 1e-4, atol: float = 1e-6,
                    max_elements: int | None = MAX_ELEMENTS, max_total: int | None = MAX_TOTAL,
                    progress=None) -> list:
    """Check d(loss)/d(param) of every param on ``feeds``; returns one row per param.

    Runs in float64 on NumPy.  Each perturbed element is compared with the backward pass's
    gradient (the same tolerance for every element, whatever the sample).  Which elements:
    :func:`sample_elements` (``max_elements=None``: every element of every param).  When the
    sample leaves elements out, one more row (:data:`ALL_PARAMS`) compares the derivative
    along one seeded random direction through every element of every param with the
    gradient's dot product with it, so no element goes unchecked.  ``progress(done, total)``
    is called after each perturbed element.
    """
    backend = select("numpy")
    executor = Executor(graph, backend, dtype="float64")
    if params is None:
        params = init_params(graph, seed, backend, "float64")
    params = {k: np.array(to_numpy(v), dtype=np.float64) for k, v in params.items()}
    executor.missing_feeds(feeds)
    feeds, _ = executor.check_feeds(feeds)

    def loss_at():
        run = executor.forward(params, feeds, checked=True)
        return float(np.sum(run.values[graph.loss]))

    base = executor.forward(params, feeds, checked=True)
    replay = Replay(executor, base.values, graph.loss)
    grads = executor.backward(base)
    grads = {name: np.asarray(grads.get(name, np.zeros_like(v)), dtype=np.float64)
             for name, v in params.items()}
    picks = sample_elements(params, np.random.default_rng(seed), max_elements, max_total)
    total, done, rows = sum(len(p) for p in picks.values()), 0, []
    for name, value in params.items():
        flat, analytic = value.reshape(-1), grads[name].reshape(-1)
        max_abs = max_rel = 0.0
        ok = True
        for i in picks[name]:
            numeric = central_difference(lambda: replay.loss_after(name), flat, i, eps)
            err = abs(analytic[i] - numeric)
            max_abs = max(max_abs, err)
            max_rel = max(max_rel, err / max(abs(numeric), abs(analytic[i]), 1e-12))
            ok = ok and err <= atol + rtol * abs(numeric)
            done += 1
            if progress is not None:
                progress(done, total)
        rows.append(GradCheck(name, value.shape, len(picks[name]), max_abs, max_rel, ok,
                              flat.size))
    if total < sum(r.size for r in rows):
        rows.append(_directional(params, grads, loss_at, seed, eps, rtol, atol))
    return rows


class Replay:
    """The loss after changing one param, re-running only the steps from the first one that
    reads it: the values before that step are the base pass's (``values``), unchanged.

    A perturbation of a param near the loss then costs a few steps, not the whole graph (on
    average half of it), so checking a deep chain costs about half as much.  Evaluation mode:
    no dropout, no randomness.
    """

    def __init__(self, executor, values: dict, loss: str):
        self.steps, self.values, self.loss = executor.steps, values, loss
        self.first: dict = {}
        for k, step in enumerate(self.steps):
            for t in step.inputs:
                self.first.setdefault(t, k)

    def loss_after(self, param: str) -> float:
        """The summed loss with ``param``'s current value (changed in place by the caller)."""
        values = dict(self.values)
        for step in self.steps[self.first.get(param, len(self.steps)):]:
            ctx = step.context(False, None, step.needs, False)
            y = step.op.forward(ctx, *[values[t] for t in step.inputs])
            if len(step.outputs) == 1:
                values[step.outputs[0]] = y
            else:
                values.update(zip(step.outputs, y))
        return float(np.sum(values[self.loss]))


def _directional(params, grads, loss_at, seed, eps, rtol, atol) -> GradCheck:
    """The derivative along a random unit direction through every param value, by central
    differences, against the gradient's dot product with that direction."""
    rng = np.random.default_rng([seed, 1])
    direction = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    norm = math.sqrt(sum(float(np.sum(d * d)) for d in direction.values())) or 1.0
    saved = {k: v.copy() for k, v in params.items()}

    def shifted(step):
        for k, v in params.items():
            v[...] = saved[k] + step * direction[k] / norm
        return loss_at()

    numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
    for k, v in params.items():
        v[...] = saved[k]
    analytic = sum(float(np.sum(grads[k] * direction[k])) for k in params) / norm
    err = abs(analytic - numeric)
    rel = err / max(abs(numeric), abs(analytic), 1e-12)
    size = sum(int(np.size(v)) for v in params.values())
    return GradCheck(ALL_PARAMS, (size,), size, err, rel, err <= atol + rtol * abs(numeric),
                     size)
