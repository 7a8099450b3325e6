"""The kernels' training loops (kernels/passes.py) against the executor's own (engine/run.py):
the same steps, the same op calls, so the same numbers bit for bit, step after step."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from minigraph.api import load_graph, load_splits
from minigraph.kernels import TrainingPasses
from minigraph.train import Trainer, train_config
from small_models import dropout_model

MODELS = Path(__file__).resolve().parent.parent / "models"

# full batch and mini-batches, sigmoid/bce, softmax, fan-out, recurrent step groups, dropout
CASES = ["xor", "xor_wide_deep", "circles", "optimizer_race", "rnn_sine", "memory_lstm",
         "backprop_basics", "linear_regression"]


def _trainer_of(source, data=None):
    graph = load_graph(source)
    return Trainer(graph, train_config(graph), data or load_splits(graph))


def _trainer(name, **train):
    graph = load_graph(str(MODELS / f"{name}.yaml"))
    return Trainer(graph, train_config(graph, {"epochs": 2, **train}), load_splits(graph))


def _same_training(make):
    """Two trainers from ``make()``, one with the written-out loops, one with the executor's
    (the same kernels otherwise): the same losses every epoch, the same params bit for bit.
    Returns them, trained."""
    fast, plain = make(), make()
    assert isinstance(fast.passes, TrainingPasses)
    plain.passes = plain.executor
    assert [r["loss"] for r in fast.fit().records] == [r["loss"] for r in plain.fit().records]
    for param in fast.params:
        np.testing.assert_array_equal(fast.params[param], plain.params[param], err_msg=param)
    return fast, plain


@pytest.mark.parametrize("name", CASES)
def test_training_passes_equal_the_executor_loops_bit_for_bit(name):
    _same_training(lambda: _trainer(name))


def test_training_passes_with_dropout_draw_what_the_executor_draws():
    _same_training(lambda: _trainer_of(dropout_model(batch_size=8, optimizer={
        "type": "momentum", "lr": 0.1})))


def test_other_passes_go_to_the_executor():
    trainer = _trainer("xor")
    batch = trainer.train_data
    evaluated = trainer.passes.forward(trainer.params, batch, checked=True)
    assert evaluated.ctxs is not trainer.passes.ctxs  # a fresh pass of the executor
    run = trainer.passes.forward(trainer.params, batch, training=True, checked=True,
                                 keep_values=False)
    kept = trainer.passes.backward(run)  # keep_all: every gradient, the executor's loop
    assert set(trainer.params) <= set(kept) and len(kept) > len(trainer.params)


def test_a_new_plan_is_picked_up():
    trainer = _trainer("xor")
    batch = trainer.train_data
    run = trainer.passes.forward(trainer.params, batch, training=True, checked=True,
                                 keep_values=False)
    assert set(trainer.passes.backward(run, keep_all=False)) >= {"W1", "b1", "W2", "b2"}
    trainer.executor.set_wrt(["W2"])
    run = trainer.passes.forward(trainer.params, batch, training=True, checked=True,
                                 keep_values=False)
    grads = trainer.passes.backward(run, keep_all=False)
    assert "W2" in grads and "W1" not in grads


def _cnn():
    conv = {"filters": 4, "kernel": 3, "stride": 1, "padding": 1}
    return {
        "minigraph": 1, "name": "small_cnn",
        "inputs": {"x": {"shape": ["batch", 1, 8, 8]},
                   "label": {"shape": ["batch"], "dtype": "int64"}},
        "nodes": [
            {"name": "conv1", "op": "conv", "inputs": ["x"], "outputs": ["c1"], "attrs": conv},
            {"name": "relu1", "op": "relu", "inputs": ["c1"], "outputs": ["r1"]},
            {"name": "pool1", "op": "maxpool2d", "inputs": ["r1"], "outputs": ["p1"],
             "attrs": {"kernel": 2}},
            {"name": "flat", "op": "flatten", "inputs": ["p1"], "outputs": ["f"]},
            {"name": "fc", "op": "linear", "inputs": ["f"], "outputs": ["logits"],
             "attrs": {"units": 3}},
            {"name": "loss", "op": "cross_entropy", "inputs": ["logits", "label"],
             "outputs": ["L"]},
        ],
        "outputs": ["logits"], "loss": "L",
        "train": {"epochs": 2, "batch_size": 4, "seed": 2,
                  "optimizer": {"type": "adam", "lr": 0.01}},
    }


def test_training_passes_equal_the_executor_loops_on_a_cnn():
    from minigraph.data import DataSplits

    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((12, 1, 8, 8)).astype(np.float32),
            "label": rng.integers(0, 3, size=12)}

    fast, _ = _same_training(lambda: _trainer_of(_cnn(), DataSplits(train=data, test=None)))
    assert any("conv" in step.name and "+" in step.name for step in fast.executor.steps)


FAN_OUT = {
    "minigraph": 1, "name": "fan_out",
    "inputs": {"x": {"shape": ["batch", 2]}, "t": {"shape": ["batch", 1]}},
    "params": {"W": {"shape": [2, 2], "init": {"uniform": {"low": -1.0, "high": 1.0}}},
               "V": {"shape": [2, 1], "init": {"uniform": {"low": -1.0, "high": 1.0}}}},
    "nodes": [  # h is read three times (twice by one node), W twice
        {"name": "mm1", "op": "matmul", "inputs": ["x", "W"], "outputs": ["z"]},
        {"name": "act", "op": "tanh", "inputs": ["z"], "outputs": ["h"]},
        {"name": "double", "op": "add", "inputs": ["h", "h"], "outputs": ["h2"]},
        {"name": "mm2", "op": "matmul", "inputs": ["h2", "W"], "outputs": ["u"]},
        {"name": "mix", "op": "mul", "inputs": ["u", "h"], "outputs": ["m"]},
        {"name": "mm3", "op": "matmul", "inputs": ["m", "V"], "outputs": ["y"]},
        {"name": "loss", "op": "mse", "inputs": ["y", "t"], "outputs": ["L"]},
    ],
    "outputs": ["y"], "loss": "L",
    "data": {"train": {"generator": "circles", "n": 32, "seed": 1}},
    "train": {"epochs": 3, "batch_size": 8, "seed": 4, "optimizer": {"type": "adam", "lr": 0.05}},
}


def test_training_passes_sum_fan_out_gradients_as_the_executor_does():
    fast, plain = _trainer_of(FAN_OUT), _trainer_of(FAN_OUT)
    run_fast = fast.passes.forward(fast.params, fast.train_data, training=True, checked=True,
                                   keep_values=False)
    run_plain = plain.executor.forward(plain.params, plain.train_data, training=True,
                                       checked=True, keep_values=False)
    got = fast.passes.backward(run_fast, keep_all=False)
    want = plain.executor.backward(run_plain, keep_all=False)
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    _same_training(lambda: _trainer_of(FAN_OUT))


HOSTILE = "x\"]); __import__('os').system('false'); ([\""  # a legal tensor name


def test_no_model_text_becomes_code():
    """The written-out loops hold only names made by the kernels: every identifier and every
    bracketed expression in their source is one of ours, whatever the model's names."""
    import re

    spec = {
        "minigraph": 1, "name": "hostile",
        "inputs": {HOSTILE: {"shape": ["batch", 2]}, "t": {"shape": ["batch", 1]}},
        "params": {"W'); import os; ('": {"shape": [2, 1], "init": "ones"}},
        "nodes": [{"name": "n\"1", "op": "matmul", "inputs": [HOSTILE, "W'); import os; ('"],
                   "outputs": ["y = 1 #"]},
                  {"name": "loss", "op": "mse", "inputs": ["y = 1 #", "t"],
                   "outputs": ["L"]}],
        "outputs": ["y = 1 #"], "loss": "L",
        "data": {"train": {"inline": {HOSTILE: [[0, 1], [1, 0]], "t": [[1], [0]]}}},
        "train": {"epochs": 2, "optimizer": {"type": "sgd", "lr": 0.1}},
    }
    graph = load_graph(spec)
    trainer = Trainer(graph, train_config(graph), load_splits(graph))
    trainer.fit()
    source = trainer.passes.source
    ours = {"def", "forward", "backward", "values", "rng", "seed", "y", "r", "if", "is", "not",
            "None", "del", "len", "grads", "return", "saved", "_bad_arity", "_plus"}
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source))
    assert words - ours <= {w for w in words if re.fullmatch(r"[tgcfbn][0-9]+", w)}, source
    assert not set(source) - set("abcdefghijklmnopqrstuvwxyz_0123456789N =()[]{},.:!\n"), source
    assert "W'); import os; ('" in trainer.params  # the names are there, as values
