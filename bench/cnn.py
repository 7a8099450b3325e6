"""Benchmark: the lecture CNN (mnist_cnn), Adam lr 1e-3, batch 100.

conv 1->32 3x3 pad 1, ReLU, maxpool 2; conv 32->64 3x3 pad 1, ReLU, maxpool 2;
flatten 3136; linear 3136->10; cross-entropy.

    .venv/bin/python bench/cnn.py [--rounds R] [--steps S] [--json-out PATH]
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before NumPy is imported

import sys

import numpy as np

from common import Target, Workload, main, mnist_like, small_bias, uniform_weight

BATCH = 100


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = {
        "conv1.W": uniform_weight(rng, (32, 1, 3, 3), 1 * 9, 32 * 9, "he"),
        "conv1.b": small_bias(rng, 32),
        "conv2.W": uniform_weight(rng, (64, 32, 3, 3), 32 * 9, 64 * 9, "he"),
        "conv2.b": small_bias(rng, 64),
        "fc.W": uniform_weight(rng, (3136, 10), 3136, 10, "xavier"),
        "fc.b": small_bias(rng, 10),
    }
    return weights, mnist_like(np.random.default_rng(seed + 1), BATCH, image=True)


def _model_source():
    try:
        from minigraph_impl import cnn_source
        return cnn_source()[1]
    except Exception as exc:  # minigraph broken: the script still times the others
        return f"unavailable ({exc.__class__.__name__})"


WORKLOAD = Workload(
    name="cnn",
    title="mnist_cnn conv32-pool-conv64-pool-fc10, cross-entropy, Adam lr 1e-3, batch 100",
    make_data=make_data,
    rounds=32, steps=3, warmup=2, probe_steps=10,
    targets=[Target("median", 1.10, "CNN step"), Target("memory", 1.3, "CNN peak memory")],
    info={"model_source": _model_source(), "batch": BATCH},
)

if __name__ == "__main__":
    sys.exit(main(WORKLOAD, __file__))
