"""Benchmark: one training step of models/lstm_weather.yaml (LSTM 16 units, T = 20, 4
features, linear 16 -> 1, MSE, Adam lr 0.005, batch 64) in minigraph, a hand-written NumPy
LSTM step and PyTorch's nn.LSTM, interleaved in one run (bench/common.py).

    .venv/bin/python bench/lstm.py [--rounds R] [--steps S] [--json-out PATH]
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before NumPy is imported

import sys

import lstm_refs
import minigraph_impl
import numpy_ref
import torch_ref
from common import Target, Workload, main

# the three implementations of this workload, beside those of xor, mlp and cnn
numpy_ref.WORKLOADS["lstm"] = lstm_refs.NumpyLstmStep
minigraph_impl.WORKLOADS["lstm"] = lstm_refs.MinigraphLstmStep
torch_ref.WORKLOADS["lstm"] = lstm_refs.TorchLstmStep

WORKLOAD = Workload(
    name="lstm",
    title="LSTM 16 units, T = 20, 4 features -> linear 1, MSE, Adam, batch 64 (lstm_weather)",
    make_data=lstm_refs.make_data,
    rounds=20, steps=20, warmup=10, probe_steps=5,
    targets=[Target("median", 2.0, "LSTM step")],
    info={"model_source": "models/lstm_weather.yaml", "batch": lstm_refs.BATCH,
          "T": lstm_refs.T, "units": lstm_refs.H},
)

if __name__ == "__main__":
    sys.exit(main(WORKLOAD, __file__))
