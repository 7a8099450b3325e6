"""Benchmark: XOR 2-2-1, sigmoid hidden and output, BCE, SGD lr 1, full batch of 4.

    .venv/bin/python bench/xor.py [--rounds R] [--steps S] [--json-out PATH]
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before NumPy is imported

import sys

import numpy as np

from common import Target, Workload, main


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = {
        "W1": rng.uniform(-1, 1, size=(2, 2)).astype(np.float32),
        "b1": rng.uniform(-0.1, 0.1, size=2).astype(np.float32),
        "W2": rng.uniform(-1, 1, size=(2, 1)).astype(np.float32),
        "b2": rng.uniform(-0.1, 0.1, size=1).astype(np.float32),
    }
    data = {"x": np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32),
            "t": np.array([[0], [1], [1], [0]], dtype=np.float32)}
    return weights, data


WORKLOAD = Workload(
    name="xor",
    title="XOR 2-2-1 sigmoid/BCE, SGD lr 1, full batch (4 examples)",
    make_data=make_data,
    rounds=30, steps=100, warmup=50, probe_steps=10,
    targets=[Target("median", 1.5, "XOR step")],
    info={"model_source": "models/xor.yaml", "batch": 4},
)

if __name__ == "__main__":
    sys.exit(main(WORKLOAD, __file__))
