"""Benchmark: MLP 784-256-256-10, ReLU, softmax cross-entropy, SGD lr 0.1, batch 100.

    .venv/bin/python bench/mlp.py [--rounds R] [--steps S] [--json-out PATH]
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before NumPy is imported

import sys

import numpy as np

from common import Target, Workload, main, mnist_like, small_bias, uniform_weight

BATCH = 100
SIZES = (784, 256, 256, 10)


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = {}
    for i, (fan_in, fan_out) in enumerate(zip(SIZES[:-1], SIZES[1:]), start=1):
        kind = "he" if i < len(SIZES) - 1 else "xavier"
        weights[f"fc{i}.W"] = uniform_weight(rng, (fan_in, fan_out), fan_in, fan_out, kind)
        weights[f"fc{i}.b"] = small_bias(rng, fan_out)
    return weights, mnist_like(np.random.default_rng(seed + 1), BATCH)


WORKLOAD = Workload(
    name="mlp",
    title="MLP 784-256-256-10 ReLU, softmax cross-entropy, SGD lr 0.1, batch 100",
    make_data=make_data,
    rounds=40, steps=30, warmup=10, probe_steps=10,
    targets=[Target("median", 1.10, "MLP step")],
    info={"model_source": "bench/minigraph_impl.py:MLP (dict)", "batch": BATCH},
)

if __name__ == "__main__":
    sys.exit(main(WORKLOAD, __file__))
