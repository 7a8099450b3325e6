"""The three workloads in minigraph, through its public training machinery.

The model comes from a file or a dict (``load_graph``), the ``train`` section is overridden
with ``train_config`` (batch size, optimizer), a :class:`~minigraph.train.Trainer` is built
on the batch, its params are overwritten with the shared initial weights, and one step is
``trainer.train_step(batch)`` on a batch that ``executor.check_feeds`` has already made
device- and dtype-ready (what ``Trainer.fit`` hands to ``train_step``).

* XOR: ``models/xor.yaml``.
* MLP: the dict :data:`MLP` below (784-256-256-10, ReLU, cross_entropy, SGD lr 0.1).
* CNN: ``models/mnist_cnn.yaml``.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

from pathlib import Path

import numpy as np

from minigraph.data import DataSplits
from minigraph.api import load_graph
from minigraph.train import Trainer, train_config

ROOT = Path(__file__).resolve().parent.parent
XOR_FILE = ROOT / "models" / "xor.yaml"
CNN_FILE = ROOT / "models" / "mnist_cnn.yaml"


def _mlp_dict(sizes=(784, 256, 256, 10)) -> dict:
    d0, d1, d2, d3 = sizes
    return {
        "minigraph": 1, "name": "bench_mlp",
        "inputs": {"x": {"shape": ["batch", d0]}, "y": {"shape": ["batch"], "dtype": "int64"}},
        "nodes": [
            {"name": "fc1", "op": "linear", "inputs": ["x"], "outputs": ["z1"],
             "attrs": {"units": d1}},
            {"name": "act1", "op": "relu", "inputs": ["z1"], "outputs": ["h1"]},
            {"name": "fc2", "op": "linear", "inputs": ["h1"], "outputs": ["z2"],
             "attrs": {"units": d2}},
            {"name": "act2", "op": "relu", "inputs": ["z2"], "outputs": ["h2"]},
            {"name": "fc3", "op": "linear", "inputs": ["h2"], "outputs": ["logits"],
             "attrs": {"units": d3}},
            {"name": "loss", "op": "cross_entropy", "inputs": ["logits", "y"],
             "outputs": ["L"]},
        ],
        "outputs": ["logits"], "loss": "L",
        "train": {"batch_size": 100, "seed": 0, "optimizer": {"type": "sgd", "lr": 0.1}},
    }


MLP = _mlp_dict()

def cnn_source():
    """(the model source the CNN workload uses, a short description of it)."""
    return CNN_FILE, str(CNN_FILE.relative_to(ROOT))


def _feeds(graph, data: dict) -> dict:
    """Map the workload's arrays (x, and t or y) onto the graph's input names.

    The float input of the data's rank is ``x``; the other is the target (``t`` or ``y``).
    """
    names = list(graph.inputs)
    target_key = "t" if "t" in data else "y"
    if set(names) == {"x", target_key}:
        return {"x": data["x"], target_key: data[target_key]}
    feeds = {}
    for name, spec in graph.inputs.items():
        if len(spec.shape) == data["x"].ndim and spec.real_dtype.startswith("float"):
            feeds[name] = data["x"]
        else:
            feeds[name] = data[target_key]
    return feeds


class _Step:
    def __init__(self, source, weights: dict, data: dict, batch_size, optimizer: dict):
        graph = load_graph(source)
        config = train_config(graph, {"batch_size": batch_size})
        config.optimizer = dict(optimizer)
        config.schedule = None
        feeds = _feeds(graph, data)
        self.trainer = Trainer(graph, config, DataSplits(train=feeds, test=None))
        self.load_weights(weights)
        self.batch = self.trainer.executor.check_feeds(feeds)[0]

    def load_weights(self, weights: dict):
        """Overwrite the trainer's params: by name, or else in order (shapes must agree)."""
        params = self.trainer.params
        if set(weights) == set(params):
            pairs = [(name, weights[name]) for name in params]
        else:
            if len(weights) != len(params):
                raise ValueError(f"the model's params {list(params)} do not match the "
                                 f"benchmark's weights {list(weights)}")
            pairs = list(zip(params, weights.values()))
        for name, value in pairs:
            if tuple(params[name].shape) != tuple(value.shape):
                raise ValueError(f"param {name}: model shape {tuple(params[name].shape)}, "
                                 f"benchmark weight shape {tuple(value.shape)}")
            params[name][...] = np.asarray(value)

    def __call__(self) -> float:
        return self.trainer.train_step(self.batch)[0]


def XorStep(weights: dict, data: dict, lr: float = 1.0):
    return _Step(XOR_FILE, weights, data, None, {"type": "sgd", "lr": lr})


def MlpStep(weights: dict, data: dict, lr: float = 0.1):
    return _Step(MLP, weights, data, data["x"].shape[0], {"type": "sgd", "lr": lr})


def CnnStep(weights: dict, data: dict, lr: float = 1e-3):
    return _Step(cnn_source()[0], weights, data, data["x"].shape[0], {"type": "adam", "lr": lr})


WORKLOADS = {"xor": XorStep, "mlp": MlpStep, "cnn": CnnStep}
