"""Numerical gradient check: compare backward with float64 central differences.

    dL/dp[i]  ~  (L(p + eps e_i) - L(p - eps e_i)) / (2 eps)

Used by ``minigraph check`` on whole models (every param), and by the op tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend import select, to_numpy
from .engine import Executor, init_params


@dataclass
class GradCheck:
    """The check of one param: worst absolute and relative error over the checked elements."""

    param: str
    shape: tuple
    checked: int
    max_abs: float
    max_rel: float
    ok: bool


def central_difference(f, x, index, eps: float = 1e-6) -> float:
    """(f() with x[index] + eps  -  f() with x[index] - eps) / (2 eps); x is restored."""
    old = x[index]
    x[index] = old + eps
    up = f()
    x[index] = old - eps
    down = f()
    x[index] = old
    return (up - down) / (2 * eps)


def check_gradients(graph, feeds: dict, params: dict | None = None, *, seed: int = 0,
                    eps: float = 1e-6, rtol: float = 1e-4, atol: float = 1e-6,
                    max_elements: int = 20) -> list:
    """Check d(loss)/d(param) of every param on ``feeds``; returns one row per param.

    Runs in float64 on NumPy.  At most ``max_elements`` elements of each param are perturbed
    (chosen with a seeded generator), so big models check quickly.
    """
    backend = select("numpy")
    executor = Executor(graph, backend, dtype="float64")
    if params is None:
        params = init_params(graph, seed, backend, "float64")
    params = {k: np.array(to_numpy(v), dtype=np.float64) for k, v in params.items()}
    executor.missing_feeds(feeds)
    feeds, _ = executor.check_feeds(feeds)

    def loss_at(p):
        run = executor.forward(p, feeds, checked=True)
        return float(np.sum(run.values[graph.loss]))

    run = executor.forward(params, feeds, checked=True)
    grads = executor.backward(run)
    rng = np.random.default_rng(seed)
    rows = []
    for name, value in params.items():
        analytic = np.asarray(grads.get(name, np.zeros_like(value)), dtype=np.float64)
        flat = value.reshape(-1)
        picks = np.arange(flat.size)
        if flat.size > max_elements:
            picks = np.sort(rng.choice(flat.size, max_elements, replace=False))
        max_abs = max_rel = 0.0
        ok = True
        for i in picks:
            numeric = central_difference(lambda: loss_at(params), flat, i, eps)
            got = analytic.reshape(-1)[i]
            err = abs(got - numeric)
            max_abs = max(max_abs, err)
            max_rel = max(max_rel, err / max(abs(numeric), abs(got), 1e-12))
            ok = ok and err <= atol + rtol * abs(numeric)
        rows.append(GradCheck(name, value.shape, len(picks), max_abs, max_rel, ok))
    return rows
