"""Parameter initializers, all drawn from one seeded NumPy generator.

Values are drawn on the host in float64 and then cast, so a seeded run starts from the same
bits on every machine and backend.  Fans follow the usual conventions: a matmul weight
``(in, out)`` has fan_in = in, fan_out = out; a conv weight ``(out, in, kh, kw)`` has
fan_in = in*kh*kw, fan_out = out*kh*kw.  Initializers are checked (:func:`check_init`) when
the graph is built, so :func:`initialize` trusts its ``init``.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import Backend, select
from ..graph import Graph
from ..initializers import InitError, check_init

__all__ = ["InitError", "check_init", "fans", "init_params", "initialize"]


def init_params(graph: Graph, seed: int = 0, backend: Backend | None = None,
                dtype: str = "float32") -> dict:
    """Fresh params for ``graph``, drawn in a fixed order from one generator seeded ``seed``."""
    backend = backend or select("numpy")
    rng = np.random.default_rng(seed)
    return {name: backend.asarray(initialize(p.init, p.shape, rng, dtype))
            for name, p in graph.params.items()}


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of this shape."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    if len(shape) == 2:
        return shape[0], shape[1]
    return shape[1] * receptive, shape[0] * receptive


def initialize(init, shape, rng: np.random.Generator, dtype="float32") -> np.ndarray:
    """A new host array of ``shape`` filled by ``init`` (already checked)."""
    shape = tuple(shape)
    fan_in, fan_out = fans(shape)
    if isinstance(init, (int, float)) and not isinstance(init, bool):
        out = np.full(shape, float(init))
    elif init == "zeros":
        out = np.zeros(shape)
    elif init == "ones":
        out = np.ones(shape)
    elif init == "xavier_uniform":
        a = math.sqrt(6.0 / (fan_in + fan_out))
        out = rng.uniform(-a, a, shape)
    elif init == "xavier_normal":
        out = rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), shape)
    elif init == "he_uniform":
        a = math.sqrt(6.0 / fan_in)
        out = rng.uniform(-a, a, shape)
    elif init == "he_normal":
        out = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
    else:
        (kind, arg), = init.items()
        if kind == "constant":
            out = np.full(shape, float(arg))
        elif kind == "value":
            out = np.asarray(arg, dtype=np.float64).reshape(shape)
        elif kind == "uniform":
            out = rng.uniform(float(arg.get("low", -1.0)), float(arg.get("high", 1.0)), shape)
        else:
            out = rng.normal(float(arg.get("mean", 0.0)), float(arg.get("std", 1.0)), shape)
    return np.asarray(out, dtype=dtype)
