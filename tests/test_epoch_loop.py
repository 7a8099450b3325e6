"""What keeps an epoch of a small model cheap, pinned against the plain code it replaces.

``Trainer.train_epoch`` cuts the data with one :class:`~minigraph.data.Batches` made at
construction, draws the dropout seed with :func:`~minigraph.train.draw_seed` (an epoch of
one batch only when an op asks), and keeps a cheap copy of the state at each epoch boundary
(reading the generator's state only when it moved).  Each shortcut must give exactly what the
plain code gives: the same batches in the same order, the same random draws, the same
records, the same params bit for bit, the same state to go back to after Ctrl-C.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from minigraph import load_graph
from minigraph.api import load_splits
from minigraph.backend import to_numpy
from minigraph.data import Batches, DataSplits, iterate_batches, num_examples
from minigraph.errors import ModelError
from minigraph.metrics import METRICS, Accuracy
from minigraph.train import Trainer, draw_seed, metric_functions, train_config
from small_models import dropout_model

MODELS = Path(__file__).resolve().parent.parent / "models"


# ==== the dropout seed ===========================================================================

def test_draw_seed_is_integers_2_to_the_63():
    """The same seeds as ``int(rng.integers(2 ** 63))``, and the generator left in the same
    state, also after draws that leave half a 64-bit word buffered."""
    for seed in range(50):
        a, b = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 1])
        for i in range(60):
            if i % 3 == 1:
                a.random(), b.random()
            elif i % 3 == 2:  # 32-bit draws buffer the other half of a 64-bit word
                a.integers(7, dtype=np.int32), b.integers(7, dtype=np.int32)
            got, want = draw_seed(a), int(b.integers(2 ** 63))
            assert type(got) is int and got == want and 0 <= got < 2 ** 63
            assert np.array_equal(a.permutation(5), b.permutation(5))
        assert a.bit_generator.state == b.bit_generator.state


# ==== the batches ================================================================================

def one_batch(n, batch_size, drop_last) -> bool:
    """Whether an epoch is one batch of all n examples, which is used in its own order."""
    return batch_size is None or (0 < n <= batch_size and not (drop_last and batch_size > n))


def plain_batches(arrays, batch_size, *, shuffle, rng, drop_last=False):
    """The epoch's batches as iterate_batches cut them before Batches (its former body), but
    for one batch of every example, which is never shuffled."""
    n = num_examples(arrays)
    if one_batch(n, batch_size, drop_last):
        return [dict(arrays)]
    order = rng.permutation(n) if shuffle else None

    def take(index):
        return {name: (a if np.ndim(a) == 0 else a[index]) for name, a in arrays.items()}

    out = []
    for start in range(0, n, batch_size):
        stop = start + batch_size
        if stop > n and drop_last:
            break
        out.append(take(slice(start, stop) if order is None else order[start:stop]))
    return out


DATASETS = {
    "rows": {"x": np.arange(20.0).reshape(10, 2), "t": np.arange(10) % 3},
    "rows and a scalar": {"x": np.arange(7.0), "s": np.float32(2.5), "t": -np.arange(7.0)},
    "scalars only": {"s": np.float64(1.0), "u": np.int64(3)},
    "other layouts": {"f": np.asfortranarray(np.arange(14.0).reshape(7, 2)),
                      "v": np.arange(42.0).reshape(7, 3, 2).transpose(0, 2, 1),
                      "r": np.arange(7, dtype=np.float32)[::-1]},
    "nothing": {},
}


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("batch_size", [None, 1, 3, 4, 10, 25])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_cut_as_the_plain_loop(name, batch_size, shuffle, drop_last):
    arrays = DATASETS[name]
    batches = Batches(arrays, batch_size, drop_last=drop_last)
    a, b, c = (np.random.default_rng(4) for _ in range(3))
    for _ in range(3):  # epochs: each draws a new order from the generator
        want = plain_batches(arrays, batch_size, shuffle=shuffle, rng=a, drop_last=drop_last)
        got = list(batches.epoch(shuffle=shuffle, rng=b))
        again = list(iterate_batches(arrays, batch_size, shuffle=shuffle, rng=c,
                                     drop_last=drop_last))
        assert len(got) == len(want) == len(again)
        for (batch, size), plain, other in zip(got, want, again):
            assert list(batch) == list(plain) == list(other)  # the same keys, in order
            for key in plain:
                assert np.array_equal(batch[key], plain[key])
                assert np.array_equal(other[key], plain[key])
                got, want = np.asarray(batch[key]), np.asarray(plain[key])
                assert got.dtype == want.dtype and got.strides == want.strides  # same layout
            assert size == num_examples(plain)
        assert a.bit_generator.state == b.bit_generator.state == c.bit_generator.state


@pytest.mark.parametrize("batch_size", [None, 10, 11])
@pytest.mark.parametrize("shuffle", [False, True])
def test_one_full_batch_is_the_arrays_themselves_and_draws_nothing(batch_size, shuffle):
    arrays, rng = DATASETS["rows"], np.random.default_rng(2)
    before = rng.bit_generator.state
    [(batch, size)] = Batches(arrays, batch_size).epoch(shuffle=shuffle, rng=rng)
    assert size == 10 and list(batch) == list(arrays)
    assert all(batch[k] is arrays[k] for k in arrays)
    assert rng.bit_generator.state == before


@pytest.mark.parametrize("size", [0, -1, 2.0, True, "4"])
def test_batches_refuse_a_batch_size_that_is_no_positive_whole_number(size):
    with pytest.raises(ModelError, match="positive whole number"):
        Batches(DATASETS["rows"], size)


# ==== the epoch loop =============================================================================

def plain_epoch(trainer) -> dict:
    """One epoch as the lesson tells it, from public pieces: the rate of the schedule, a
    dropout seed, the shuffled batches, one step each, the record with the metrics.  An epoch
    of one batch has no order to draw, and draws a dropout seed only for a model that has
    dropout (Trainer draws it when dropout first asks: nothing else draws in between)."""
    cfg = trainer.config
    trainer.optimizer.lr = trainer.schedule.lr_at(trainer.state.epoch)
    dropout = None
    if not one_batch(num_examples(trainer.train_data), cfg.batch_size, cfg.drop_last) \
            or any(node.op_name == "dropout" for node in trainer.graph.nodes):
        dropout = np.random.default_rng(int(trainer.rng.integers(2 ** 63)))
    total, count, preds, targets = 0.0, 0, [], []
    for batch in iterate_batches(trainer.train_data, cfg.batch_size, shuffle=cfg.shuffle,
                                 rng=trainer.rng, drop_last=cfg.drop_last):
        loss, run = trainer.train_step(batch, dropout)
        n = max(num_examples(batch), 1)
        total, count = total + loss * n, count + n
        if cfg.metrics and trainer.prediction and trainer.targets:
            preds.append(to_numpy(run.values[trainer.prediction]))
            targets.append(to_numpy(batch[trainer.targets[0]]))
    trainer.state.epoch += 1
    record = {"epoch": trainer.state.epoch, "loss": total / max(count, 1)}
    if preds:
        pred, target = np.concatenate(preds), np.concatenate(targets)
        for name in cfg.metrics:
            extra = (cfg.threshold,) if name == "accuracy" else ()
            record[name] = METRICS[name](pred, target, *extra)
    if trainer.test_data is not None:
        record.update({f"test_{k}": v for k, v in trainer.evaluate(trainer.test_data).items()})
    record.update(trainer.baselines)
    record["lr"] = trainer.optimizer.lr
    return record



CASES = {
    "xor (one full batch: not shuffled)": (MODELS / "xor.yaml", {"epochs": 30}),
    "xor, batch_size 4 (the full batch)": (MODELS / "xor.yaml", {"epochs": 5,
                                                                 "batch_size": 4}),
    "dropout, one full batch": (dropout_model(), {}),
    "dropout, one full batch, not shuffled": (dropout_model(shuffle=False), {}),
    "or_perceptron (signed targets)": (MODELS / "or_perceptron.yaml", {"epochs": 8}),
    "optimizer_race (no shuffling, adam)": (MODELS / "optimizer_race.yaml", {"epochs": 12}),
    "dropout, batches of 8": (dropout_model(batch_size=8), {}),
    "dropout, batches of 8, drop_last": (dropout_model(batch_size=8, drop_last=True), {}),
    "dropout, momentum, a schedule": (dropout_model(
        batch_size=16, optimizer={"type": "sgd", "lr": 0.1, "momentum": 0.9},
        schedule={"type": "step", "step_size": 2, "gamma": 0.5}), {}),
    "chain_rule (params only, no data)": (MODELS / "chain_rule.yaml",
                                          {"epochs": 4, "optimizer": {"type": "sgd",
                                                                      "lr": 0.01}}),
}


def make(source, train: dict):
    graph = load_graph(source)
    config = train_config(graph)
    for key, value in train.items():
        setattr(config, key, value)
    data = load_splits(graph) if graph.spec.data is not None else DataSplits(None, None)
    return Trainer(graph, config, data)


@pytest.mark.parametrize("case", CASES)
def test_fit_gives_what_the_plain_epoch_loop_gives(case):
    source, train = CASES[case]
    fast, plain = make(source, train), make(source, train)
    history = fast.fit()
    plain.state.mark_boundary()
    records = [plain_epoch(plain) for _ in range(len(history.records))]
    assert len(records) == fast.config.epochs or history.stopped_early
    for got, want in zip(history.records, records):
        seconds = got.pop("seconds")
        assert seconds >= 0
        assert list(got) == list(want) and got == want  # the same keys, in order, same values
    for name in plain.params:
        assert np.array_equal(fast.params[name], plain.params[name]), name
    same_state(fast, plain)


def same_state(a, b):
    """Two trainers hold the same optimizer state, epoch and random generator."""
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sorted(sa) == sorted(sb)
    for key in sa:
        assert np.array_equal(sa[key], sb[key]), key
    assert a.epoch == b.epoch
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


@pytest.mark.parametrize("case", CASES)
def test_an_interrupted_epoch_goes_back_to_the_boundary_the_plain_loop_reached(case):
    """Ctrl-C after the last step of epoch 3 (the state has moved, and the generator too when
    the epoch drew) leaves exactly the state the plain loop has after 2 epochs, also where
    the boundary kept the generator state of the one before."""
    source, train = CASES[case]
    fast, plain = make(source, train), make(source, train)
    step, steps = fast.train_step, {"n": 0}
    per_epoch = len(list(fast.batches.epoch(shuffle=False, rng=None)))

    def interrupted(batch, rng=None):
        out = step(batch, rng)
        steps["n"] += 1
        if steps["n"] == 3 * per_epoch:
            raise KeyboardInterrupt
        return out

    fast.train_step = interrupted
    history = fast.fit()
    assert history.interrupted and fast.epoch == 2 and len(history.records) == 2
    plain.state.mark_boundary()
    for _ in range(2):
        plain_epoch(plain)
    ckpt = fast.checkpoint()
    assert ckpt.epoch == 2
    for name, value in ckpt.params.items():
        assert np.array_equal(value, plain.params[name]), name
    same_state(fast, plain)


# ==== accuracy ===================================================================================

def plain_accuracy(pred, target, threshold=None):
    """accuracy as it was written before Accuracy kept its targets' classes."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.ndim >= 2 and pred.shape[-1] > 1:
        labels = target if target.ndim == pred.ndim - 1 else target.argmax(-1)
        return float(np.mean(pred.argmax(-1) == labels))
    signed = target.min() < 0
    if threshold is None:
        threshold = 0.0 if signed else 0.5
    return float(np.mean((pred.reshape(target.shape) > threshold)
                         == (target > (0.0 if signed else 0.5))))


def accuracy_cases(rng):
    """(pred, target) pairs: 0/1 and -1/+1 targets, soft targets, predictions at the
    threshold itself, a flat prediction for column targets, class indices and one-hot rows."""
    t01 = (rng.random((9, 1)) > 0.5).astype(np.float32)
    yield rng.random((9, 1)).astype(np.float32), t01
    yield np.full((9, 1), 0.5, np.float32), t01  # exactly at 0.5: class 0
    yield rng.random(9), t01  # (9,) against (9, 1)
    yield rng.integers(0, 2, (9, 1)), t01  # whole numbers
    yield rng.random((9, 1)).astype(np.float16), t01
    signed = np.where(rng.random((7, 1)) > 0.5, 1.0, -1.0)
    yield rng.normal(size=(7, 1)), signed
    yield np.zeros((7, 1)), signed  # exactly at 0: class -1
    yield rng.integers(-1, 2, (7, 1)), signed  # whole numbers -1, 0, 1
    yield rng.random((6, 1)), rng.random((6, 1))  # soft targets: class 1 above 0.5
    scores = rng.normal(size=(8, 4))
    yield scores, rng.integers(0, 4, 8)
    yield scores, np.eye(4)[rng.integers(0, 4, 8)]
    yield np.zeros((5, 3)), np.arange(5) % 3  # ties: argmax takes the first


@pytest.mark.parametrize("threshold", [None, 0.25, -0.5])
def test_accuracy_keeps_classes_and_gives_what_the_plain_formula_gives(threshold):
    rng = np.random.default_rng(7)
    for pred, target in accuracy_cases(rng):
        signed = bool(np.asarray(target).min() < 0)
        want = plain_accuracy(pred, target, threshold)
        assert METRICS["accuracy"](pred, target, threshold) == want
        keeping = Accuracy(threshold, signed)
        other = target[::-1].copy()  # other targets, of the same kind
        for t in (target, target, other, target):  # the same array again, another, back
            assert keeping(pred, t) == plain_accuracy(pred, t, threshold)
        for _ in range(2):  # new predictions against the same targets
            pred = rng.permutation(pred)
            assert keeping(pred, target) == plain_accuracy(pred, target, threshold)


def test_the_training_targets_decide_whether_classes_are_signed():
    """A test set of +1 labels only, of a -1/+1 problem, is still judged at 0."""
    config = train_config(load_graph(MODELS / "or_perceptron.yaml"))
    train = {"t": np.array([[-1.0], [1.0], [1.0], [1.0]])}
    metrics = metric_functions(config, train, ["t"])
    pred, test = np.array([[0.3], [0.2]]), np.array([[1.0], [1.0]])
    assert metrics["accuracy"](pred, test) == 1.0
    assert METRICS["accuracy"](pred, test) == 0.0  # alone, it reads them as 0/1 targets
