"""Training: the ``train`` section, the epoch/batch loop, evaluation, and ``run``/``eval``.

The trainer prints nothing.  It reports each epoch to an optional callback (the CLI draws a
progress bar from it) and returns a :class:`History`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .backend import select, to_numpy
from .checkpoint import Checkpoint, defer_sigint
from .data import Batches, DataSplits, iterate_batches, num_examples
from . import kernels
from .engine import Executor, init_params
from .errors import DataError, ModelError, RunError, did_you_mean
from .graph import Graph, ancestors
from .limits import MAX_EPOCHS, MAX_SEED, short
from .metrics import METRICS, Accuracy, check_metrics
from .kernels.packed import PackedParams
from .optim import make_optimizer
from .options import Option, OptionError, check_options
from .shapes import batch_sizes
from .stopping import (EarlyStopping, check_early_stopping, check_stop_at, stop_at_text,
                       stop_reached)
from .lr_schedules import make_schedule

POSITIVE = "a positive integer"
NUMBER = "a number"
BACKENDS = ("numpy", "cupy", "auto")

TRAIN_OPTIONS = {
    "epochs": Option("int", 1, "passes over the training data", minimum=1,
                     maximum=MAX_EPOCHS, words=POSITIVE),
    "batch_size": Option("int", None, "examples per step (null: the full batch)", minimum=1,
                         maximum=MAX_SEED, words=POSITIVE),
    "shuffle": Option("bool", True, "shuffle the examples every epoch (one full batch keeps "
                      "its order)", words="true or false"),
    "seed": Option("int", 0, "seed of every random draw", minimum=0, maximum=MAX_SEED,
                   words=f"a whole number from 0 to {MAX_SEED}"),
    "optimizer": Option("mapping", {"type": "sgd", "lr": 0.01}, "{type: NAME, option: value}",
                        words="a mapping such as {type: sgd, lr: 0.1}"),
    "schedule": Option("any", None, "learning-rate schedule {type: NAME, option: value}"),
    "metrics": Option("list", [], "metrics reported every epoch",
                      words="a list such as [accuracy]"),
    "log_every": Option("int", None, "an epoch line every this many epochs", minimum=1,
                        maximum=MAX_SEED, words=POSITIVE),
    "drop_last": Option("bool", False, "drop a last batch smaller than batch_size",
                        words="true or false"),
    "backend": Option("str", None, "array backend", choices=BACKENDS,
                      words=f"one of {', '.join(BACKENDS)}"),
    "stop_at": Option("mapping", None, "stop once a loss or metric (train or test_) reaches "
                      "its value", words="a mapping such as {accuracy: 1.0}"),
    "early_stopping": Option("mapping", None, "stop when a loss or metric stops improving: "
                             "{monitor, patience, min_delta, restore_best}",
                             words="a mapping such as {monitor: test_loss, patience: 10}"),
    "threshold": Option("float", None, "binary accuracy threshold (default 0.5, or 0 for ±1)",
                        words=NUMBER),
    "distributed": Option("bool", False, "data-parallel across the ranks of an MPI job "
                          "(mpiexec; see minigraph.distributed)", words="true or false"),
}
TRAIN_KEYS = tuple(TRAIN_OPTIONS)


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
    distributed: bool = False  # data-parallel across MPI ranks (minigraph.distributed)
    early_stopping: dict | None = None  # {monitor, patience, min_delta, restore_best}


def train_config(graph: Graph, overrides: dict | None = None) -> TrainConfig:
    """Check the model's ``train`` section and apply command-line overrides."""
    spec = graph.spec
    raw = dict(spec.train or {})
    try:
        values = check_options(TRAIN_OPTIONS, raw, "key", "train", name_as="train.{}")
        values["optimizer"] = dict(values["optimizer"])  # --lr changes this copy
        values["metrics"] = check_metrics(values["metrics"], "metrics")
        has_test = isinstance(spec.data, dict) and spec.data.get("test") is not None
        if values["stop_at"] is not None:
            values["stop_at"] = check_stop_at(values["stop_at"], values["metrics"], has_test)
        if values["early_stopping"] is not None:
            values["early_stopping"] = check_early_stopping(values["early_stopping"],
                                                            values["metrics"], has_test)
    except OptionError as exc:
        raise exc.at(_train_location(spec, exc.key)) from None
    cfg = TrainConfig(**values)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key == "lr":  # checked with the optimizer's options
            cfg.optimizer["lr"] = value
        else:  # checked as the train section's own key is (a flag has the same bounds)
            setattr(cfg, key, TRAIN_OPTIONS[key].check(key, value, f"--{key.replace('_', '-')}"))
    return cfg


def _train_location(spec, key: str):
    """Where the value of ``train.KEY`` (or ``train.stop_at.NAME``) is written; the key itself
    for a key that ``train`` does not have."""
    if key in TRAIN_OPTIONS:
        return spec.at("train", key)
    for section in ("stop_at", "early_stopping"):
        if key.startswith(section + "."):
            return spec.at("train", section, key[len(section) + 1:])
    return spec.key_at("train", key)


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
    except OptionError as exc:
        raise exc.at(_section_key(spec, "optimizer", exc.key)) from None
    try:
        schedule = make_schedule(config.schedule, optimizer.lr, config.epochs)
    except OptionError as exc:
        raise exc.at(_section_key(spec, "schedule", exc.key)) from None
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


def _section_key(spec, section: str, key: str | None):
    """Where ``train.SECTION.KEY`` is written (the section itself when ``key`` is None)."""
    return spec.key_at("train", section, key) if key else spec.at("train", section)


# ==== the loop ====================================================================================

@dataclass
class History:
    """One record per epoch: ``{"epoch", "loss", <metric>, "test_loss", "test_<metric>", ...}``."""

    records: list = field(default_factory=list)
    stopped_early: bool = False
    interrupted: bool = False
    stop_reason: str = ""  # why it stopped early, in words
    restored_epoch: int | None = None  # early_stopping.restore_best: the epoch whose params

    @property
    def last(self) -> dict:
        return self.records[-1] if self.records else {}


def scalar(value) -> float:
    """A one-element array (shape () or (1,), on any backend) as a Python float."""
    return float(value if value.ndim == 0 else value.reshape(()))


def _targets_of(graph: Graph) -> list:
    """Inputs the loss reads that the first output does not: the targets."""
    if graph.loss is None:
        return []
    feeds_output = ancestors(graph, graph.outputs[0]) if graph.outputs else set()
    loss_reads = ancestors(graph, graph.loss)
    return [t for t in graph.inputs if t in loss_reads and t not in feeds_output]


class NonFiniteLoss(RunError):
    """The loss of a training step became NaN or inf; no param had changed yet.

    :meth:`Trainer.train_step` raises it naming the node that first produced the bad value,
    and :meth:`Trainer.fit` raises it again with the epoch and step (counted from 0) added.
    """

    def __init__(self, loss: float, node=None, epoch: int | None = None,
                 step: int | None = None):
        self.loss, self.node, self.epoch, self.step = loss, node, epoch, step
        where = f"; first produced by node '{node.name}' ({node.op_name})" \
            if node is not None else ""
        message = f"the loss became {loss}{where}"
        if epoch is not None:
            message += f" at epoch {epoch + 1}, step {step + 1}. Try a smaller learning rate."
        super().__init__(message)

    def at(self, epoch: int, step: int) -> NonFiniteLoss:
        """The same error, saying where in training it happened."""
        return NonFiniteLoss(self.loss, self.node, epoch, step)


class EpochCallback(Protocol):
    """What :meth:`Trainer.fit` calls after each epoch (a plain ``f(record)`` serves too)."""

    def on_epoch_end(self, record: dict) -> None:
        """``record``: ``{"epoch", "loss", <metric>, "test_loss", ..., "lr", "seconds"}``."""


def epoch_callbacks(callbacks) -> list:
    """``fit``'s callbacks as a list of functions of the epoch record.

    ``callbacks`` is None, one callback or a list of them; a callback is an object with
    ``on_epoch_end(record)`` (:class:`EpochCallback`) or a plain callable ``f(record)``.
    """
    if callbacks is None:
        return []
    if callable(callbacks) or hasattr(callbacks, "on_epoch_end"):
        callbacks = [callbacks]
    out = []
    for callback in callbacks:
        function = getattr(callback, "on_epoch_end", callback)
        if not callable(function):
            raise TypeError(f"an epoch callback has on_epoch_end(record) or is a function of "
                            f"the record, got {short(callback)}")
        out.append(function)
    return out


def event_hooks(callbacks, event: str = "on_batch_end") -> list:
    """The ``event`` methods (Keras-style: ``on_batch_end(step, logs)``) of those of ``fit``'s
    callbacks that have one; ``logs`` holds the epoch's running ``loss`` and ``examples``."""
    if callbacks is None:
        return []
    if callable(callbacks) or hasattr(callbacks, "on_epoch_end"):
        callbacks = [callbacks]
    return [getattr(c, event) for c in callbacks if callable(getattr(c, event, None))]


def stopping(config: TrainConfig, watch: EarlyStopping | None, record: dict,
             history: History) -> bool:
    """After an epoch: whether ``train.stop_at`` or ``train.early_stopping`` ends training
    (then ``history`` says so, and why)."""
    if watch is not None:
        watch.on_epoch_end(record)
    if stop_reached(config.stop_at, record):
        history.stop_reason = f"target reached, {stop_at_text(config.stop_at)}"
    elif watch is not None and watch.stop_training:
        history.stop_reason = watch.reason()
    else:
        return False
    history.stopped_early = True
    return True


def restore_best(watch: EarlyStopping | None, history: History, state) -> None:
    """At the end of training, ``early_stopping.restore_best`` puts the best epoch's params
    back; that state is the new epoch boundary (what a checkpoint saves)."""
    if watch is None:
        return
    history.restored_epoch = watch.on_train_end()
    if history.restored_epoch is not None:
        state.mark_boundary()


def check_data(graph: Graph, config: TrainConfig, data: DataSplits) -> None:
    """Refuse, with located errors, data that training could not use: no training data for a
    model with inputs, a split without values for an input, or no whole batch to train on."""
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


def metric_functions(config: TrainConfig, data: dict, targets: list) -> dict:
    """``{name: f(preds, target)}`` for each metric of ``config.metrics``; accuracy with its
    threshold and the targets' convention (-1/+1 or 0/1 classes) decided once, from all the
    training targets: ``data[targets[0]]`` (see :class:`~minigraph.metrics.Accuracy`)."""
    signed = bool(targets) and bool((data[targets[0]] < 0).any())
    return {name: Accuracy(config.threshold, signed) if name == "accuracy" else METRICS[name]
            for name in config.metrics}


def metric_values(functions: dict, preds, target) -> dict:
    """Each metric of :func:`metric_functions` for ``preds`` against ``target``."""
    return {name: f(preds, target) for name, f in functions.items()}


def joined(arrays: list):
    """The epoch's batches' arrays as one (a full batch's own array, not a copy)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def draw_seed(rng) -> int:
    """An epoch's dropout seed: ``int(rng.integers(2 ** 63))``, drawn as NumPy draws it (the
    top 63 bits of one 64-bit draw of ``rng``'s PCG64) without ``integers``' argument
    handling, which costs more than a small model's step (tests/test_epoch_loop.py checks
    that both give the same seeds and leave ``rng`` in the same state)."""
    return rng.bit_generator.random_raw() >> 1


class LazyGenerator:
    """An epoch's generator for dropout, made on first use: ``xp.random.default_rng(seed)``.

    Making a generator costs more than a whole training step of a small model, and most
    models never draw from it.  ``seed`` is the epoch's seed, drawn when the epoch began; or
    None, and the seed is drawn from ``source`` (the training generator) on first use.  An
    epoch of shuffled batches draws its seed first, so its order does not depend on the
    model's ops; an epoch of one batch has no order to draw, and leaves the training
    generator untouched unless an op draws (``moved``).
    """

    __slots__ = ("xp", "seed", "source", "generator")

    def __init__(self, xp, seed: int | None = None, source=None):
        self.xp, self.seed, self.source, self.generator = xp, seed, source, None

    @classmethod
    def of_epoch(cls, xp, rng, one_batch: bool) -> LazyGenerator:
        """The generator of an epoch whose random draws come from ``rng``: of one batch, or
        of shuffled batches (which draws its seed now, before their order)."""
        return cls(xp, None, rng) if one_batch else cls(xp, draw_seed(rng))

    @property
    def moved(self) -> bool:
        """Whether the training generator has been drawn from for this one."""
        return self.seed is not None

    def __getattr__(self, name):  # rng.random(shape), ...: the real generator's
        if self.generator is None:
            if self.seed is None:
                self.seed = draw_seed(self.source)
            self.generator = self.xp.random.default_rng(self.seed)
        return getattr(self.generator, name)


class TrainingState:
    """What a checkpoint holds -- params, optimizer state, epoch, RNG state -- and a copy of
    it taken at the last epoch boundary, to go back to when an epoch is interrupted.

    ``params``, ``optimizer`` and ``rng`` are the trainer's own objects, changed in place;
    ``update`` is the plan's optimizer step (the optimizer, or the kernels' flat update),
    which copies the optimizer's state for the boundary.
    """

    def __init__(self, params, optimizer, rng, backend, dtype: str, model_name: str,
                 update=None):
        self.params = params
        self.optimizer = optimizer
        self.update = update or optimizer
        self.rng = rng
        self.backend = backend
        self.dtype = dtype
        self.model_name = model_name
        self.epoch = 0
        self.boundary = None  # the state at the last epoch boundary, see rollback()
        self.mid_epoch = False  # whether the live state has moved past that boundary

    def snapshot(self, rng_moved: bool = True) -> tuple:
        """A copy of the whole training state: (epoch, params, optimizer state, RNG state).

        ``rng_moved=False``: nothing was drawn from the RNG since the last boundary, whose
        copy of its state serves again (reading the state costs more than a small step).
        """
        packed = isinstance(self.params, PackedParams) and self.params.intact()
        params = self.params.flat.copy() if packed else {k: v.copy()
                                                         for k, v in self.params.items()}
        same = not rng_moved and self.boundary is not None
        return (self.epoch, params, self.update.copy_state(),
                self.boundary[3] if same else self.rng.bit_generator.state)

    def mark_boundary(self, rng_moved: bool = True) -> None:
        """Take the live state as the new epoch boundary (see :meth:`snapshot`)."""
        self.mid_epoch = True  # until the copy is whole, an interrupt goes back to the last
        self.boundary = self.snapshot(rng_moved)
        self.mid_epoch = False

    def rollback(self) -> bool:
        """Return to the state at the start of the epoch that was interrupted, if any.

        ``fit`` keeps a copy of the state at each epoch boundary (params, optimizer state
        with its step counts, epoch, RNG state); Ctrl-C in the middle of an epoch rolls back
        to it, so :meth:`checkpoint` then holds exactly what an uninterrupted run had at that
        boundary.  Ctrl-C is held back meanwhile; calling it again is harmless.
        """
        if not self.mid_epoch or self.boundary is None:
            return False
        with defer_sigint(reraise=False):
            epoch, params, optim, rng_state = self.boundary
            if not isinstance(params, dict):  # a copy of the packed params' flat array
                self.params.flat[...] = params
            else:
                for name, value in params.items():
                    self.params[name][...] = value
            self.update.restore_state(optim)
            self.rng.bit_generator.state = rng_state
            self.epoch = epoch
            self.mid_epoch = False
        return True

    def check_checkpoint(self, ckpt: Checkpoint) -> None:
        """Refuse a checkpoint whose params do not fit the model's (names, shapes, dtypes)."""
        for name, value in ckpt.params.items():
            if name not in self.params:
                raise DataError(f"checkpoint has param '{name}', which model "
                                f"'{self.model_name}' does not have"
                                f"{did_you_mean(name, self.params)}")
            if tuple(value.shape) != tuple(self.params[name].shape):
                raise DataError(f"checkpoint param '{name}' has shape {tuple(value.shape)}, "
                                f"the model's is {tuple(self.params[name].shape)}")
            if value.dtype.kind not in "iuf":
                raise DataError(f"checkpoint param '{name}' holds {value.dtype}, expected "
                                "real numbers")

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from a checkpoint: params, and when present optimizer, epoch and RNG.

        Names and shapes are checked before anything changes, so a refused checkpoint leaves
        the state as it was.
        """
        self.check_checkpoint(ckpt)
        for name, value in ckpt.params.items():
            self.params[name][...] = self.backend.asarray(value, dtype=self.dtype)
        if ckpt.optimizer:
            self.optimizer.load_state_dict({k: self.backend.asarray(v)
                                            for k, v in ckpt.optimizer.items()})
        if ckpt.epoch is not None:
            self.epoch = int(ckpt.epoch)
        if ckpt.rng_state is not None:
            self.rng.bit_generator.state = ckpt.rng_state
        self.boundary, self.mid_epoch = None, False

    def checkpoint(self) -> Checkpoint:
        """The training state at the last epoch boundary (after an interrupt: rolled back)."""
        self.rollback()
        return Checkpoint(dict(self.params), self.optimizer.state_dict(), self.epoch,
                          self.rng.bit_generator.state, self.model_name)


class Trainer:
    """Trains a graph's params on data with the configured optimizer and schedule.

    Its parts: the plan (:meth:`_build_plan`), the data on the device (:meth:`_move_data`), the
    state a checkpoint holds (:class:`TrainingState`), one update (:meth:`train_step`), one
    epoch (:meth:`train_epoch`), the loop (:meth:`fit`), evaluation (:meth:`evaluate`).
    """

    reports = True  # whether its caller prints, logs and saves (data-parallel: rank 0 only)

    def __init__(self, graph: Graph, config: TrainConfig, data: DataSplits, *,
                 backend=None, checkpoint: Checkpoint | None = None, use_kernels=None):
        require_loss(graph)
        check_data(graph, config, data)
        self.graph = graph
        self.config = config
        self.optimizer, self.schedule = make_training(graph, config)  # before allocating
        self.backend = select(backend or config.backend)
        self._build_plan(use_kernels)
        self.rng = np.random.default_rng([config.seed, 1])  # shuffling and dropout seeds
        self.state = TrainingState(self.params, self.optimizer, self.rng, self.backend,
                                   self.executor.dtype, graph.name, self.update)
        self.history = None  # the History of the last (or current) fit()
        self.batch_hooks = []  # fit()'s callbacks' on_batch_end(step, logs)
        self._move_data(data)
        self.baselines = dict(data.baselines)  # e.g. persistence_mse of windowed data
        self.targets = _targets_of(graph)
        self.prediction = graph.outputs[0] if graph.outputs else None
        self.metrics = metric_functions(config, self.train_data, self.targets)
        if checkpoint is not None:
            self.restore(checkpoint)

    def _build_plan(self, use_kernels=None) -> None:
        """The training plan: the plain rules or (by default) the kernels' (flat params)."""
        self.kernels = kernels.enabled(use_kernels)
        rewrites = kernels.training_rewrites(self.kernels)
        self.executor = Executor(self.graph, self.backend, rewrites=rewrites)
        params = init_params(self.graph, self.config.seed, self.backend)
        self.params = kernels.pack_params(params) if self.kernels else params
        self.update = kernels.training_update(self.optimizer, rewrites)
        self.passes = kernels.training_passes(self.executor, rewrites)  # forward, backward

    def _move_data(self, data: DataSplits) -> None:
        """Move the data to the device once, and check every batch shape a run will see now:
        passes trust their feeds.  A model without inputs (only params) trains on no data."""
        self.train_data, _ = self.executor.check_feeds(data.train or {}, infer=False)
        self.test_data = self.executor.check_feeds(data.test, infer=False)[0] \
            if data.test else None
        self.batches = Batches(self.train_data, self.config.batch_size,
                               drop_last=self.config.drop_last)  # cut anew every epoch
        self._check_batches()

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

    # -- state (see TrainingState) ----------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The number of epochs trained so far."""
        return self.state.epoch

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from a checkpoint: params, and when present optimizer, epoch and RNG.

        Names and shapes are checked before anything changes, so a refused checkpoint leaves
        the trainer as it was.  (:func:`load_checkpoint` with ``params=`` and ``optimizer=``
        checks the same, and more, before reading the file's data.)
        """
        self.state.restore(ckpt)

    def rollback(self) -> bool:
        """Back to the last epoch boundary if an epoch was cut (TrainingState.rollback)."""
        return self.state.rollback()

    def checkpoint(self) -> Checkpoint:
        """The training state at the last epoch boundary (after an interrupt: rolled back)."""
        return self.state.checkpoint()

    # -- passes -----------------------------------------------------------------------------
    def _metrics(self, preds, targets) -> dict:
        """The configured metrics of ``preds`` against the target (host arrays by name)."""
        if not self.targets or preds is None:
            return {}
        return metric_values(self.metrics, preds, targets[self.targets[0]])

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

    # -- training ---------------------------------------------------------------------------
    def train_step(self, batch: dict, rng=None):
        """One update on one batch (already on the device): forward, backward, optimizer step.

        Returns ``(loss, pass)``; a non-finite loss raises :class:`NonFiniteLoss` naming the
        node that first produced NaN or inf, before any param changes.
        """
        run = self.passes.forward(self.params, batch, training=True, rng=rng, checked=True,
                                  keep_values=False)
        loss = scalar(run.values[self.graph.loss])
        if not math.isfinite(loss):
            raise NonFiniteLoss(loss, self.executor.locate_nonfinite(self.params, batch, rng))
        grads = self.passes.backward(run, keep_all=False)
        run.grads = {}  # the update may overwrite them: they are the plan's temporaries
        self.update.step(self.params, grads)
        return loss, run

    def train_epoch(self) -> dict:
        """One pass over the shuffled training data, one :meth:`train_step` per batch; the
        state then is a new epoch boundary.  Returns the epoch's record: ``{"epoch", "loss",
        <metric>, "test_loss", "test_<metric>", ..., "lr", "seconds"}``."""
        cfg, state = self.config, self.state
        state.mid_epoch = True  # the state now moves away from its last boundary
        epoch, start = state.epoch, time.perf_counter()
        self.optimizer.lr = self.schedule.lr_at(epoch)
        dropout_rng = LazyGenerator.of_epoch(self.backend.xp, self.rng, self.batches.whole)
        keep = cfg.metrics and self.prediction and self.targets  # what the metrics read
        total, count, preds, targets = 0.0, 0, [], []
        for step, (batch, n) in enumerate(self.batches.epoch(shuffle=cfg.shuffle,
                                                              rng=self.rng)):
            try:
                loss, run = self.train_step(batch, dropout_rng)
            except NonFiniteLoss as exc:
                raise exc.at(epoch, step) from None
            n = max(n, 1)  # a model without inputs: one "example"
            total += loss * n
            count += n
            for on_batch_end in self.batch_hooks:  # e.g. a progress bar
                on_batch_end(step, {"loss": total / count, "examples": count})
            if keep:
                preds.append(to_numpy(run.values[self.prediction]))
                targets.append(to_numpy(batch[self.targets[0]]))
        state.epoch += 1
        state.mark_boundary(dropout_rng.moved)  # a new boundary: the epoch is complete
        record = {"epoch": state.epoch, "loss": total / max(count, 1)}
        if preds:
            record.update(metric_values(self.metrics, joined(preds), joined(targets)))
        if self.test_data is not None:
            for key, value in self.evaluate(self.test_data).items():
                record[f"test_{key}"] = value
        record.update(self.baselines)  # the same every epoch: what the model must beat
        record["lr"] = self.optimizer.lr
        record["seconds"] = time.perf_counter() - start
        return record

    def fit(self, callbacks=None) -> History:
        """Train from ``self.epoch`` to ``config.epochs``, one :meth:`train_epoch` at a time;
        after each, every callback's ``on_epoch_end(record)`` (or ``callback(record)``) runs
        (see :func:`epoch_callbacks`).

        Ctrl-C ends the loop cleanly with ``history.interrupted`` set: the state goes back to
        the last epoch boundary (see :meth:`rollback`), so the caller may save it and a run
        resumed from that checkpoint ends bit for bit where an uninterrupted one does.
        """
        notify, self.batch_hooks = epoch_callbacks(callbacks), event_hooks(callbacks)
        watch = EarlyStopping(self.params, **self.config.early_stopping) \
            if self.config.early_stopping else None
        history = self.history = History()
        try:
            self.state.mark_boundary()  # the first boundary (nothing changes)
            while self.state.epoch < self.config.epochs:
                record = self.train_epoch()
                history.records.append(record)
                for on_epoch_end in notify:
                    on_epoch_end(record)
                if stopping(self.config, watch, record, history):
                    break
            restore_best(watch, history, self.state)
        except KeyboardInterrupt:
            history.interrupted = True
            self.rollback()
        return history
