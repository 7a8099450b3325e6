"""Training: the ``train`` section, the epoch/batch loop, evaluation, and ``run``/``eval``.

The trainer prints nothing.  It reports each epoch to an optional callback (the CLI draws a
progress bar from it) and returns a :class:`History`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .backend import select, to_numpy
from .checkpoint import Checkpoint, defer_sigint
from .data import DataSplits, iterate_batches, num_examples
from . import kernels
from .engine import Executor, init_params
from .errors import DataError, ModelError, RunError, did_you_mean
from .graph import Graph
from .limits import MAX_EPOCHS, MAX_SEED, short
from .metrics import METRICS, check_metrics
from .kernels.packed import PackedParams
from .optim import make_optimizer
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


BACKENDS = ("numpy", "cupy", "auto")


def _int(value, key, at, positive=True, maximum=None):
    if isinstance(value, bool) or not isinstance(value, int) or (positive and value < 1):
        raise ModelError(f"train.{key} must be a {'positive ' if positive else ''}integer, "
                         f"got {short(value)}", at(key))
    if maximum is not None and value > maximum:
        raise ModelError(f"train.{key} must be at most {maximum:,}, got {short(value)}", at(key))
    return value


def _number(value, key, at):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelError(f"train.{key} must be a number, got {short(value)}", at(key))
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ModelError(f"train.{key} must be a finite number, got {short(value)}", at(key))
    return number


def check_seed(seed, where="seed"):
    """A seed is a whole number in 0 ... 2**63 - 1 (NumPy refuses negative ones)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ModelError(f"{where} must be a whole number from 0 to {MAX_SEED}, got "
                         f"{short(seed)}")
    return seed


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
        cfg.epochs = _int(raw["epochs"], "epochs", at, maximum=MAX_EPOCHS)
    if raw.get("batch_size") is not None:
        cfg.batch_size = _int(raw["batch_size"], "batch_size", at, maximum=MAX_SEED)
    for key in ("shuffle", "drop_last"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ModelError(f"train.{key} must be true or false", at(key))
            setattr(cfg, key, raw[key])
    if "seed" in raw:
        cfg.seed = _int(raw["seed"], "seed", at, positive=False)
        if cfg.seed < 0 or cfg.seed > MAX_SEED:
            raise ModelError(f"train.seed must be a whole number from 0 to {MAX_SEED}, got "
                             f"{short(cfg.seed)}", at("seed"))
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
        cfg.log_every = _int(raw["log_every"], "log_every", at, maximum=MAX_SEED)
    if raw.get("backend") is not None:
        backend = raw["backend"]
        if not isinstance(backend, str) or backend not in BACKENDS:
            hint = did_you_mean(backend, BACKENDS) if isinstance(backend, str) else ""
            raise ModelError(f"train.backend must be one of {', '.join(BACKENDS)}, got "
                             f"{short(backend)}{hint}", at("backend"))
        cfg.backend = backend
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
        if key == "seed":
            check_seed(value, "--seed")
        if key == "lr":
            cfg.optimizer["lr"] = value
        else:
            setattr(cfg, key, value)
    return cfg


def require_loss(graph: Graph) -> None:
    """Training and evaluation need a loss; say so where the train section is."""
    if graph.loss is None:
        where = "a train section" if graph.spec.train is not None else "this command"
        raise ModelError(f"model '{graph.name}' has no 'loss': {where} needs one to "
                         "minimize or evaluate", graph.spec.at("train"))


def check_training(graph: Graph, overrides: dict | None = None) -> TrainConfig | None:
    """Everything ``run`` checks in the train section before it trains (None: no section).

    ``minigraph check`` calls this, so that a file it calls valid is one ``run`` accepts.
    """
    if graph.spec.train is None:
        return None
    config = train_config(graph, overrides)
    require_loss(graph)
    make_training(graph, config)
    return config


def make_training(graph: Graph, config: TrainConfig):
    """``(optimizer, schedule)`` as the trainer uses them, with located errors.

    Shared by :class:`Trainer` and ``minigraph check``, so that ``check`` refuses exactly what
    ``run`` would.  The schedule's rate is computed at the first and the last epoch: a rate that
    overflows (``gamma ** epoch``) or is not a finite positive number is refused here, before
    any training.
    """
    spec = graph.spec
    try:
        optimizer = make_optimizer(config.optimizer)
    except ModelError as exc:
        raise _located(exc, spec, "train", "optimizer") from None
    try:
        schedule = make_schedule(config.schedule, optimizer.lr, config.epochs)
    except ModelError as exc:
        raise _located(exc, spec, "train", "schedule") from None
    for epoch in sorted({0, config.epochs - 1}):
        try:
            lr = float(schedule.lr_at(epoch))
        except (OverflowError, ZeroDivisionError, ValueError):
            lr = math.inf
        if not math.isfinite(lr) or lr < 0:
            raise ModelError(f"the schedule gives no usable learning rate at epoch {epoch + 1} "
                             f"(got {lr!r} from {short(config.schedule, 80)}); check its "
                             "options against train.epochs", spec.at("train", "schedule"))
    return optimizer, schedule


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
                 backend=None, checkpoint: Checkpoint | None = None, use_kernels=None):
        require_loss(graph)
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
        self.optimizer, self.schedule = make_training(graph, config)  # before allocating
        self.backend = select(backend or config.backend)
        # The training plan: the plain rules, or (by default) with the kernels' faster
        # implementations of the same rules, one flat array behind all params and the
        # optimizer's update on it in one go.
        self.kernels = kernels.enabled(use_kernels)
        self.executor = Executor(graph, self.backend,
                                 rewrites=kernels.training_rewrites(self.kernels))
        params = init_params(graph, config.seed, self.backend)
        self.params = kernels.pack_params(params) if self.kernels else params
        self.update = kernels.FlatUpdate(self.optimizer) if self.kernels else self.optimizer
        self.rng = np.random.default_rng([config.seed, 1])  # shuffling and dropout seeds
        self.epoch = 0
        self._boundary = None  # the state at the last epoch boundary, see rollback()
        self._mid_epoch = False  # whether the live state has moved past that boundary
        self.history = None  # the History of the last (or current) fit()
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
        """Continue from a checkpoint: params, and when present optimizer, epoch and RNG.

        Names and shapes are checked before anything changes, so a refused checkpoint leaves
        the trainer as it was.  (:func:`load_checkpoint` with ``params=`` and ``optimizer=``
        checks the same, and more, before reading the file's data.)
        """
        for name, value in ckpt.params.items():
            if name not in self.params:
                raise DataError(f"checkpoint has param '{name}', which model "
                                f"'{self.graph.name}' does not have"
                                f"{did_you_mean(name, self.params)}")
            if tuple(value.shape) != tuple(self.params[name].shape):
                raise DataError(f"checkpoint param '{name}' has shape {tuple(value.shape)}, "
                                f"the model's is {tuple(self.params[name].shape)}")
            if value.dtype.kind not in "iuf":
                raise DataError(f"checkpoint param '{name}' holds {value.dtype}, expected "
                                "real numbers")
        for name, value in ckpt.params.items():
            self.params[name][...] = self.backend.asarray(value, dtype=self.executor.dtype)
        if ckpt.optimizer:
            self.optimizer.load_state_dict({k: self.backend.asarray(v)
                                            for k, v in ckpt.optimizer.items()})
        if ckpt.epoch is not None:
            self.epoch = int(ckpt.epoch)
        if ckpt.rng_state is not None:
            self.rng.bit_generator.state = ckpt.rng_state
        self._boundary, self._mid_epoch = None, False

    def _snapshot(self) -> tuple:
        """A copy of the whole training state: (epoch, params, optimizer state, RNG state)."""
        packed = isinstance(self.params, PackedParams) and self.params.intact()
        params = self.params.flat.copy() if packed else {k: v.copy()
                                                         for k, v in self.params.items()}
        return (self.epoch, params, self.optimizer.state_dict(),
                self.rng.bit_generator.state)

    def rollback(self) -> bool:
        """Return to the state at the start of the epoch that was interrupted, if any.

        ``fit`` keeps a copy of the state at each epoch boundary (params, optimizer state
        with its step counts, epoch, RNG state); Ctrl-C in the middle of an epoch rolls back
        to it, so :meth:`checkpoint` then holds exactly what an uninterrupted run had at that
        boundary.  Ctrl-C is held back meanwhile; calling it again is harmless.
        """
        if not self._mid_epoch or self._boundary is None:
            return False
        with defer_sigint(reraise=False):
            epoch, params, optim, rng_state = self._boundary
            if not isinstance(params, dict):  # a copy of the packed params' flat array
                self.params.flat[...] = params
            else:
                for name, value in params.items():
                    self.params[name][...] = value
            self.optimizer.load_state_dict(optim)
            self.rng.bit_generator.state = rng_state
            self.epoch = epoch
            self._mid_epoch = False
        return True

    def checkpoint(self) -> Checkpoint:
        """The training state at the last epoch boundary (after an interrupt: rolled back)."""
        self.rollback()
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
        run.grads = {}  # the update may overwrite them: they are the plan's temporaries
        self.update.step(self.params, grads)
        return loss, run

    def fit(self, callback=None) -> History:
        """Train from ``self.epoch`` to ``config.epochs``; ``callback(record)`` each epoch.

        Ctrl-C ends the loop cleanly with ``history.interrupted`` set: the state goes back to
        the last epoch boundary (see :meth:`rollback`), so the caller may save it and a run
        resumed from that checkpoint ends bit for bit where an uninterrupted one does.
        """
        cfg = self.config
        xp = self.backend.xp
        history = self.history = History()
        try:
            self._mid_epoch = True  # until the first boundary is taken (nothing changes)
            self._boundary = self._snapshot()
            self._mid_epoch = False
            while self.epoch < cfg.epochs:
                self._mid_epoch = True  # the state now moves away from self._boundary
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
                self._boundary = self._snapshot()  # a new boundary: the epoch is complete
                self._mid_epoch = False
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
            self.rollback()
        return history
