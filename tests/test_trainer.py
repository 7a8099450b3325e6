"""The Trainer's pieces: the callback protocol, the non-finite loss signal, the plan apart
from the loops."""
from __future__ import annotations

import numpy as np
import pytest

from minigraph import load_graph
from minigraph.data import DataSplits
from minigraph.engine import Executor, Step, init_params
from minigraph.engine.plan import make_plan, wanted_tensors
from minigraph.errors import RunError
from minigraph.train import (NonFiniteLoss, Trainer, epoch_callbacks, stop_reached,
                             train_config)

LINE = {"minigraph": 1, "name": "line", "inputs": {"x": {"shape": ["batch", 1]},
                                                  "t": {"shape": ["batch", 1]}},
        "params": {"w": {"shape": [1, 1], "init": {"constant": 0.5}}},
        "nodes": [{"name": "mm", "op": "matmul", "inputs": ["x", "w"], "outputs": ["y"]},
                  {"name": "loss", "op": "mse", "inputs": ["y", "t"], "outputs": ["L"]}],
        "outputs": ["y"], "loss": "L",
        "train": {"epochs": 3, "optimizer": {"type": "sgd", "lr": 0.1}}}
DATA = {"x": np.array([[1.0], [2.0]], dtype=np.float32),
        "t": np.array([[2.0], [4.0]], dtype=np.float32)}


def trainer(lr=0.1, epochs=3):
    spec = dict(LINE, train=dict(LINE["train"], epochs=epochs,
                                 optimizer={"type": "sgd", "lr": lr}))
    graph = load_graph(spec)
    return Trainer(graph, train_config(graph), DataSplits(train=dict(DATA), test=None))


def test_fit_calls_on_epoch_end_objects_and_plain_callables():
    seen = []

    class Recorder:
        def on_epoch_end(self, record):
            seen.append(("object", record["epoch"]))

    history = trainer().fit([Recorder(), lambda record: seen.append(("plain", record["epoch"]))])
    assert len(history.records) == 3
    assert seen == [(kind, e) for e in (1, 2, 3) for kind in ("object", "plain")]
    one = []
    trainer().fit(lambda record: one.append(record["epoch"]))  # a single callable, as before
    assert one == [1, 2, 3]


def test_epoch_callbacks_refuses_what_cannot_be_called():
    assert epoch_callbacks(None) == []
    with pytest.raises(TypeError, match="on_epoch_end"):
        epoch_callbacks([42])


def test_non_finite_loss_is_a_run_error_with_where_it_happened():
    t = trainer(lr=1e30)
    with pytest.raises(NonFiniteLoss) as caught, np.errstate(over="ignore", invalid="ignore"):
        t.fit()
    error = caught.value
    assert isinstance(error, RunError)
    assert error.epoch >= 0 and error.step == 0  # counted from 0; one batch an epoch
    assert str(error).startswith(f"the loss became {error.loss}")
    assert f"at epoch {error.epoch + 1}, step 1. Try a smaller learning rate." in str(error)


def test_stop_reached():
    assert not stop_reached(None, {"loss": 0.0})
    assert stop_reached({"loss": 0.1, "accuracy": 1.0}, {"loss": 0.05, "accuracy": 1.0})
    assert not stop_reached({"loss": 0.1}, {"loss": 0.2})
    assert not stop_reached({"accuracy": 1.0}, {"loss": 0.0})


def test_a_plan_is_made_without_running_anything():
    graph = load_graph(LINE)
    plan = make_plan(graph, wanted_tensors(graph), {"y", "L"})
    assert [s.name for s in plan.steps] == ["mm", "loss"]
    assert all(isinstance(s, Step) for s in plan.steps)
    assert plan.steps[0].needs == (False, True)  # x is data: no gradient
    assert plan.requires == {"w", "y", "L"}
    assert [s.name for s in plan.backward_steps] == ["loss", "mm"]


def test_executor_runs_its_plan():
    graph = load_graph(LINE)
    ex = Executor(graph, dtype="float64")
    run = ex.forward(init_params(graph, dtype="float64"), DATA)
    grads = ex.backward(run)
    # L = mean((x w - t)^2) with w = 0.5: dL/dw = mean(2 (x w - t) x) = -7.5
    assert np.isclose(float(grads["w"].reshape(())), -7.5)
    assert set(grads) >= {"w", "y", "L"}
