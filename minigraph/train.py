"""Training: the ``train`` section, the epoch/batch loop, evaluation, and ``run``/``eval``.

The trainer prints nothing.  It reports each epoch to an optional callback (the CLI draws a
progress bar from it) and returns a :class:`History`.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backend import select, to_numpy
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .data import DataSplits, iterate_batches, num_examples
from .engine import Executor, init_params
from .errors import DataError, MinigraphError, ModelError, RunError, did_you_mean
from .graph import Graph
from .metrics import METRICS, check_metrics
from .model import load_graph, load_splits
from .optim import make_optimizer, pack_params
from .shapes import batch_sizes
from .schedules import make_schedule

TRAIN_KEYS = ("epochs", "batch_size", "shuffle", "seed", "optimizer", "schedule", "metrics",
              "log_every", "drop_last", "backend", "stop_at", "threshold")


# ==== the train section ===========================================================================

@dataclass
class TrainConfig:
    """The ``train`` section with defaults filled in (flags already applied)."""

    epochs: int = 1
    batch_size: int | None = None  # None: the full batch
    shuffle: bool = True
    seed: int = 0
    optimizer: dict = field(default_factory=lambda: {"type": "sgd", "lr": 0.01})
    schedule: dict | None = None
    metrics: list = field(default_factory=list)
    log_every: int | None = None
    drop_last: bool = False
    backend: str | None = None
    stop_at: dict | None = None  # e.g. {accuracy: 1.0}: stop once the train metric reaches it
    threshold: float | None = None  # binary accuracy threshold (default 0.5, or 0 for ±1)


def _int(value, key, at, positive=True):
    if isinstance(value, bool) or not isinstance(value, int) or (positive and value < 1):
        raise ModelError(f"train.{key} must be a {'positive ' if positive else ''}integer, "
                         f"got {value!r}", at(key))
    return value


def _number(value, key, at):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelError(f"train.{key} must be a number, got {value!r}", at(key))
    return float(value)


def train_config(graph: Graph, overrides: dict | None = None) -> TrainConfig:
    """Check the model's ``train`` section and apply command-line overrides."""
    spec = graph.spec
    raw = dict(spec.train or {})

    def at(*keys):
        return spec.at("train", *keys)

    for key in raw:
        if key not in TRAIN_KEYS:
            raise ModelError(f"unknown key '{key}' in train{did_you_mean(key, TRAIN_KEYS)}; "
                             f"allowed keys: {', '.join(TRAIN_KEYS)}", spec.key_at("train", key))
    cfg = TrainConfig()
    if "epochs" in raw:
        cfg.epochs = _int(raw["epochs"], "epochs", at)
    if raw.get("batch_size") is not None:
        cfg.batch_size = _int(raw["batch_size"], "batch_size", at)
    for key in ("shuffle", "drop_last"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ModelError(f"train.{key} must be true or false", at(key))
            setattr(cfg, key, raw[key])
    if "seed" in raw:
        cfg.seed = _int(raw["seed"], "seed", at, positive=False)
    if "optimizer" in raw:
        if not isinstance(raw["optimizer"], dict):
            raise ModelError("train.optimizer must be a mapping such as {type: sgd, lr: 0.1}",
                             at("optimizer"))
        cfg.optimizer = dict(raw["optimizer"])
    if raw.get("schedule") is not None:
        cfg.schedule = raw["schedule"]
    if "metrics" in raw:
        metrics = raw["metrics"]
        if not isinstance(metrics, list):
            raise ModelError("train.metrics must be a list such as [accuracy]", at("metrics"))
        problem = check_metrics(metrics)
        if problem:
            raise ModelError(problem, at("metrics"))
        cfg.metrics = list(metrics)
    if raw.get("log_every") is not None:
        cfg.log_every = _int(raw["log_every"], "log_every", at)
    if "backend" in raw:
        cfg.backend = raw["backend"]
    if "threshold" in raw:
        cfg.threshold = _number(raw["threshold"], "threshold", at)
    if "stop_at" in raw:
        stop = raw["stop_at"]
        if not isinstance(stop, dict) or not stop:
            raise ModelError("train.stop_at must be a mapping such as {accuracy: 1.0}",
                             at("stop_at"))
        problem = check_metrics([k for k in stop if k != "loss"])
        if problem:
            raise ModelError(problem, at("stop_at"))
        for key, value in stop.items():
            _number(value, f"stop_at.{key}", lambda *k: at("stop_at", key))
            if key != "loss" and key not in cfg.metrics:
                raise ModelError(f"train.stop_at.{key} needs '{key}' in train.metrics "
                                 f"(metrics: {cfg.metrics or 'none'})", at("stop_at", key))
        cfg.stop_at = dict(stop)

    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key == "lr":
            cfg.optimizer["lr"] = value
        else:
            setattr(cfg, key, value)
    return cfg


def _located(error, spec, *path):
    """Attach a file location to an error raised by a helper without one."""
    if getattr(error, "location", None) is None:
        key = getattr(error, "key", None)
        error.location = spec.key_at(*path, key) if key else spec.at(*path)
    return error


# ==== the loop ====================================================================================

@dataclass
class History:
    """One record per epoch: ``{"epoch", "loss", <metric>, "test_loss", "test_<metric>", ...}``."""

    records: list = field(default_factory=list)
    stopped_early: bool = False
    interrupted: bool = False

    @property
    def last(self) -> dict:
        return self.records[-1] if self.records else {}


def scalar(value) -> float:
    """A one-element array (shape () or (1,), on any backend) as a Python float."""
    return float(value if value.ndim == 0 else value.reshape(()))


def _targets_of(graph: Graph) -> list:
    """Inputs the loss reads that the first output does not: the targets."""
    def ancestors(tensor):
        seen, todo = set(), [tensor]
        while todo:
            t = todo.pop()
            if t in seen:
                continue
            seen.add(t)
            producer = graph.tensors[t].producer
            if producer is not None:
                todo.extend(graph.node(producer).inputs)
        return seen

    if graph.loss is None:
        return []
    feeds_output = ancestors(graph.outputs[0]) if graph.outputs else set()
    return [t for t in graph.inputs if t in ancestors(graph.loss) and t not in feeds_output]


class Trainer:
    """Trains a graph's params on data with the configured optimizer and schedule."""

    def __init__(self, graph: Graph, config: TrainConfig, data: DataSplits, *,
                 backend=None, checkpoint: Checkpoint | None = None):
        if graph.loss is None:
            where = "a train section" if graph.spec.train is not None else "this command"
            raise ModelError(f"model '{graph.name}' has no 'loss': {where} needs one to "
                             "minimize or evaluate", graph.spec.at("train"))
        if data.train is None and graph.inputs:
            raise DataError(f"model '{graph.name}' has nothing to train on: add a data.train "
                            "section")
        for split, arrays in (("train", data.train), ("test", data.test)):
            missing = [t for t in graph.inputs if arrays is not None and t not in arrays]
            if missing:
                raise DataError(f"the {split} data has no values for input"
                                f"{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(repr(m) for m in missing)} (it gives: "
                                f"{', '.join(arrays) or 'nothing'})",
                                graph.spec.at("data", split))
        n = num_examples(data.train or {})
        if config.drop_last and config.batch_size and config.batch_size > n:
            raise DataError(f"batch_size {config.batch_size} with drop_last leaves no batch of "
                            f"the {n} training examples", graph.spec.at("train", "batch_size"))
        self.graph = graph
        self.config = config
        self.backend = select(backend or config.backend)
        self.executor = Executor(graph, self.backend, fuse=True)
        # one flat array behind all params: the optimizer updates them in one go
        self.params = pack_params(init_params(graph, config.seed, self.backend))
        try:
            self.optimizer = make_optimizer(config.optimizer)
        except ModelError as exc:
            raise _located(exc, graph.spec, "train", "optimizer") from None
        try:
            self.schedule = make_schedule(config.schedule, self.optimizer.lr, config.epochs)
        except ModelError as exc:
            raise _located(exc, graph.spec, "train", "schedule") from None
        self.rng = np.random.default_rng([config.seed, 1])  # shuffling and dropout seeds
        self.epoch = 0
        # moved to the device once; a model without inputs (only params) trains on no data.
        # Every batch shape a run will see is checked now: passes trust their feeds.
        self.train_data, _ = self.executor.check_feeds(data.train or {}, infer=False)
        self.test_data = self.executor.check_feeds(data.test, infer=False)[0] \
            if data.test else None
        self._check_batches()
        self.targets = _targets_of(graph)
        self.prediction = graph.outputs[0] if graph.outputs else None
        if checkpoint is not None:
            self.restore(checkpoint)

    def _check_batches(self) -> None:
        """Infer the graph's shapes for every batch size that training, evaluation and the
        final prediction will cut from the data, before any op runs."""
        cfg, check = self.config, self.executor.check_batches
        if not self.graph.inputs:
            self.executor.check_sizes({})
            return
        n = num_examples(self.train_data)
        check(self.train_data, batch_sizes(n, cfg.batch_size, cfg.drop_last)
              + batch_sizes(n, cfg.batch_size or 1000) + ([n] if n <= 16 else []))
        if self.test_data:
            check(self.test_data,
                  batch_sizes(num_examples(self.test_data), cfg.batch_size or 1000))

    # -- state ------------------------------------------------------------------------------
    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from a checkpoint: params, and when present optimizer, epoch and RNG."""
        for name, value in ckpt.params.items():
            if name not in self.params:
                raise DataError(f"checkpoint has param '{name}', which model "
                                f"'{self.graph.name}' does not have"
                                f"{did_you_mean(name, self.params)}")
            if tuple(value.shape) != tuple(self.params[name].shape):
                raise DataError(f"checkpoint param '{name}' has shape {tuple(value.shape)}, "
                                f"the model's is {tuple(self.params[name].shape)}")
            self.params[name][...] = self.backend.asarray(value, dtype=self.executor.dtype)
        if ckpt.optimizer:
            self.optimizer.load_state_dict({k: self.backend.asarray(v)
                                            for k, v in ckpt.optimizer.items()})
        if ckpt.epoch is not None:
            self.epoch = int(ckpt.epoch)
        if ckpt.rng_state is not None:
            self.rng.bit_generator.state = ckpt.rng_state

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(dict(self.params), self.optimizer.state_dict(), self.epoch,
                          self.rng.bit_generator.state, self.graph.name)

    # -- passes -----------------------------------------------------------------------------
    def _metrics(self, preds, targets) -> dict:
        out = {}
        if not self.targets or preds is None:
            return out
        target = targets[self.targets[0]]
        for name in self.config.metrics:
            if name == "accuracy":
                out[name] = METRICS[name](preds, target, self.config.threshold)
            else:
                out[name] = METRICS[name](preds, target)
        return out

    def evaluate(self, arrays: dict, batch_size: int | None = None) -> dict:
        """Loss and metrics on ``arrays`` (already on the device), in eval mode."""
        batch_size = batch_size or self.config.batch_size or 1000
        n = num_examples(arrays)
        total, preds = 0.0, []
        for batch in iterate_batches(arrays, batch_size, shuffle=False, rng=self.rng):
            run = self.executor.forward(self.params, batch, checked=True, keep_values=False)
            total += scalar(run.values[self.graph.loss]) * max(num_examples(batch), 1)
            if self.prediction:
                preds.append(to_numpy(run.values[self.prediction]))
        host = {t: to_numpy(arrays[t]) for t in self.targets}
        result = {"loss": total / max(n, 1)}
        result.update(self._metrics(np.concatenate(preds) if preds else None, host))
        return result

    def predict(self, arrays: dict) -> dict:
        """Every output of the model on ``arrays`` (host NumPy in, host NumPy out)."""
        feeds, _ = self.executor.check_feeds({k: v for k, v in arrays.items()
                                              if k in self.graph.inputs})
        run = self.executor.forward(self.params, feeds, checked=True)
        return {t: to_numpy(run.values[t]) for t in self.graph.outputs}

    def _stop(self, record) -> bool:
        if not self.config.stop_at:
            return False
        for key, value in self.config.stop_at.items():
            got = record.get(key)
            if got is None or (got > value if key == "loss" else got < value):
                return False
        return True

    def train_step(self, batch: dict, rng=None):
        """One update on one batch (already on the device): forward, backward, optimizer step.

        Returns ``(loss, pass)``; a non-finite loss raises FloatingPointError naming the node
        that first produced NaN or inf, before any param changes.
        """
        run = self.executor.forward(self.params, batch, training=True, rng=rng, checked=True,
                                    keep_values=False)
        loss = scalar(run.values[self.graph.loss])
        if not math.isfinite(loss):
            node = self.executor.locate_nonfinite(self.params, batch, rng)
            where = f"; first produced by node '{node.name}' ({node.op_name})" \
                if node is not None else ""
            raise FloatingPointError(f"the loss became {loss}{where}")
        grads = self.executor.backward(run, keep_all=False)
        run.grads = {}  # the optimizer may overwrite them: they are the plan's temporaries
        self.optimizer.step(self.params, grads, consume=True)
        return loss, run

    def fit(self, callback=None) -> History:
        """Train from ``self.epoch`` to ``config.epochs``; ``callback(record)`` each epoch.

        Ctrl-C ends the loop cleanly with ``history.interrupted`` set (the caller may save).
        """
        cfg = self.config
        xp = self.backend.xp
        history = History()
        try:
            while self.epoch < cfg.epochs:
                epoch, start = self.epoch, time.perf_counter()
                self.optimizer.lr = self.schedule.lr_at(epoch)
                dropout_rng = xp.random.default_rng(int(self.rng.integers(2 ** 63)))
                total, count, preds, targets = 0.0, 0, [], {t: [] for t in self.targets}
                for step, batch in enumerate(iterate_batches(
                        self.train_data, cfg.batch_size, shuffle=cfg.shuffle, rng=self.rng,
                        drop_last=cfg.drop_last)):
                    try:
                        loss, run = self.train_step(batch, dropout_rng)
                    except FloatingPointError as exc:
                        raise RunError(f"{exc} at epoch {epoch + 1}, step {step + 1}. "
                                       "Try a smaller learning rate.") from None
                    n = max(num_examples(batch), 1)  # a model without inputs: one "example"
                    total += loss * n
                    count += n
                    if cfg.metrics and self.prediction:
                        preds.append(to_numpy(run.values[self.prediction]))
                        for t in self.targets:
                            targets[t].append(to_numpy(batch[t]))
                self.epoch += 1
                record = {"epoch": self.epoch, "loss": total / max(count, 1)}
                if preds:
                    record.update(self._metrics(np.concatenate(preds),
                                                {t: np.concatenate(v) for t, v in targets.items()}))
                if self.test_data is not None:
                    for key, value in self.evaluate(self.test_data).items():
                        record[f"test_{key}"] = value
                record["lr"] = self.optimizer.lr
                record["seconds"] = time.perf_counter() - start
                history.records.append(record)
                if callback is not None:
                    callback(record)
                if self._stop(record):
                    history.stopped_early = True
                    break
        except KeyboardInterrupt:
            history.interrupted = True
        return history


# ==== what `minigraph run` and `minigraph eval` call ==============================================

@dataclass
class RunResult:
    """What a run did: its graph, and either a training history or one forward pass."""

    graph: Graph
    history: History | None = None
    trainer: Trainer | None = None
    outputs: dict | None = None  # forward-only runs: output values
    loss: float | None = None
    grads: dict | None = None  # forward-only runs with a loss: param and input gradients
    table: dict | None = None  # small data: inputs, outputs and targets of the final model
    saved: str | None = None


def _forward_only(graph, backend, seed, params, data_dir) -> RunResult:
    from .model import Model

    model = Model(graph, backend=backend, seed=seed, params=params)
    feeds = model.default_feeds(data_dir) if graph.spec.data else {}
    outputs = model.forward(feeds)
    result = RunResult(graph, outputs=outputs)
    if graph.loss is not None:
        model.backward()
        result.loss = scalar(model.value(graph.loss))
        result.grads = {t: model.grad(t) for t in list(graph.params) + list(graph.inputs)
                        if model.grad(t) is not None}
    if feeds:
        result.table = {**{k: to_numpy(v) for k, v in feeds.items()}, **outputs}
    return result


def run_model(source, *, epochs=None, batch_size=None, lr=None, seed=None, backend=None,
              save=None, load=None, log=None, data_dir=None, callback=None) -> RunResult:
    """Train a model file (or run one forward pass when it has no ``train`` section)."""
    graph = load_graph(source)
    if save and not Path(save).resolve().parent.is_dir():
        raise MinigraphError(f"cannot save to {save}: folder {Path(save).parent} does not exist")
    ckpt = load_checkpoint(load) if load else None
    if graph.spec.train is None:
        given = [f"--{k.replace('_', '-')}" for k, v in (("epochs", epochs), (
            "batch_size", batch_size), ("lr", lr), ("save", save), ("log", log)) if v]
        if given:
            raise MinigraphError(f"model '{graph.name}' has no train section, so "
                                 f"{', '.join(given)} cannot apply: it runs one forward pass")
        return _forward_only(graph, backend, seed, ckpt.params if ckpt else None, data_dir)
    config = train_config(graph, {"epochs": epochs, "batch_size": batch_size, "lr": lr,
                                  "seed": seed})
    trainer = Trainer(graph, config, load_splits(graph, data_dir), backend=backend,
                      checkpoint=ckpt)
    log_file = open(log, "w", encoding="utf-8") if log else None  # noqa: SIM115

    def on_epoch(record):
        if log_file is not None:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
        if callback is not None:
            callback(record)

    if trainer.epoch >= config.epochs:
        raise DataError(f"the checkpoint {load} is already at epoch {trainer.epoch}, so "
                        f"{config.epochs} epochs leave nothing to train: ask for more with "
                        "--epochs")
    if callback is not None and hasattr(callback, "begin"):
        callback.begin(total=config.epochs, start=trainer.epoch, log_every=config.log_every)
    try:
        history = trainer.fit(on_epoch)
    finally:
        if log_file is not None:
            log_file.close()
    result = RunResult(graph, history=history, trainer=trainer)
    if save:
        save_checkpoint(save, trainer.checkpoint())
        result.saved = str(save)
    n = num_examples(trainer.train_data)
    if n <= 16 and not history.interrupted:
        host = {k: to_numpy(v) for k, v in trainer.train_data.items()}
        result.table = {**host, **trainer.predict(host)}
    return result


def evaluate_model(source, params, *, data_dir=None, backend=None) -> dict:
    """Loss and metrics of saved params on the test data (the training data if none)."""
    graph = load_graph(source)
    config = train_config(graph)
    ckpt = load_checkpoint(params)
    splits = load_splits(graph, data_dir)
    which = "test" if splits.test is not None else "train"
    data = DataSplits(train=splits.test if splits.test is not None else splits.train, test=None)
    trainer = Trainer(graph, config, data, backend=backend,
                      checkpoint=Checkpoint(ckpt.params))
    result = trainer.evaluate(trainer.train_data)
    result["split"] = which
    result["examples"] = num_examples(trainer.train_data)
    return result
