"""The Python API: load a model, run it, read values and gradients, draw it, train it.

>>> import minigraph as mg
>>> m = mg.load("models/backprop_basics.yaml")
>>> m.forward(); m.backward()
>>> m.grad("w")
>>> mg.draw(m)                     # the graph with that pass's values and gradients

The facade over the floors below: :class:`Model` (one pass at a time, on the plain plan),
:func:`draw` (runs a pass, then :mod:`~minigraph.render` draws it), :func:`run_model` and
:func:`evaluate_model` (what ``minigraph run`` and ``eval`` call: the
:class:`~minigraph.train.Trainer` plus files: checkpoints and the JSON-lines log) and
:func:`check_model` (``minigraph check``).  Nothing here prints; the command line does.
"""
from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import introspect
from .backend import select, to_numpy
from .checkpoint import (Checkpoint, check_save_target, defer_sigint, interrupt_once,
                         load_checkpoint, save_checkpoint)
from .data import DataSplits, iterate_batches, load_data, num_examples
from .distributed import DataParallelTrainer, join_job
from .engine import Executor, init_params
from .errors import DataError, MinigraphError, ModelError, UnknownName, did_you_mean
from .graph import Graph, build_graph
from .loader import read_file
from .optim import make_optimizer
from .render import GradScale, GraphPicture, Snapshot, auto_picture, build_dot
from .render.collapse import collapse_steps
from .spec import ModelSpec, dump_json, dump_yaml, parse_spec, spec_from_dict
from .trace import TraceRecorder
from .train import History, Trainer, check_training, scalar, train_config


def load_graph(source) -> Graph:
    """A checked graph from a file path, a dict, or a :class:`ModelSpec`."""
    if isinstance(source, Graph):
        return source
    if isinstance(source, ModelSpec):
        return build_graph(source)
    if isinstance(source, dict):
        return build_graph(spec_from_dict(source))
    return build_graph(parse_spec(read_file(source)))


class Model:
    """A graph with params on a backend, and the last pass's values and gradients.

    ``forward(feeds)`` runs the graph (feeds default to the file's first training batch or the
    model's constants); ``backward()`` differentiates the loss; ``value(name)`` and
    ``grad(name)`` read any tensor by name as a NumPy array.
    """

    def __init__(self, graph: Graph, *, backend=None, seed: int | None = None,
                 dtype: str = "float32", params: dict | None = None):
        self.graph = graph
        self.backend = select(backend)
        self.dtype = dtype
        train = graph.spec.train or {}
        self.seed = seed if seed is not None else int(train.get("seed", 0))
        self.executor = Executor(graph, self.backend, dtype=dtype, wrt="all")
        self.params = init_params(graph, self.seed, self.backend, dtype)
        self.last = None
        if isinstance(params, (str, os.PathLike)):
            self.load_params(params)
        elif params is not None:
            self.set_params(params)

    def __repr__(self) -> str:
        g = self.graph
        return (f"Model({g.name!r}, {len(g.nodes)} nodes, {len(g.params)} params, "
                f"{g.param_count():,} parameters, {self.backend.name} {self.dtype})")

    # -- params -----------------------------------------------------------------------------
    def set_params(self, params: dict) -> None:
        """Replace param values by name (e.g. from a checkpoint); shapes must match.

        The values are copied: training or changing the model's params afterwards never
        changes the caller's arrays (nor does changing those change the model).
        """
        for name, value in params.items():
            if name not in self.params:
                hint = (": that is a checkpoint's key; load the file with "
                        "m.load_params(path)" if str(name).startswith(("param/", "optim/"))
                        or name == "meta" else did_you_mean(name, self.params))
                raise MinigraphError(f"no param '{name}' in model '{self.graph.name}'{hint}")
            value = np.asarray(to_numpy(value))
            if value.shape != self.params[name].shape:
                raise MinigraphError(f"param '{name}' has shape {self.params[name].shape} in "
                                     f"the model but {value.shape} in the given values")
            self.params[name] = self.backend.xp.array(value, dtype=self.dtype)  # a copy

    def load_params(self, path) -> None:
        """Load params saved by ``minigraph run --save`` or :meth:`save_params` (an ``.npz``).

        The file is validated as ``run --load`` validates it (names, shapes, finite real
        numbers; nothing is unpickled); a plain ``.npz`` of params by name is accepted too.
        """
        self.set_params(load_checkpoint(path, params=_param_shapes(self.graph)).params)

    def save_params(self, path) -> None:
        """Write the params to ``path`` (``.npz``), atomically, as ``run --save`` does; the file
        loads with :meth:`load_params`, ``mg.load(model, params=path)`` and ``run --load``."""
        save_checkpoint(path, Checkpoint(dict(self.params), model=self.graph.name))

    # -- running ----------------------------------------------------------------------------
    def predict(self, feeds: dict | None = None, *, outputs=None, batch_size: int | None = None,
                **inputs) -> dict:
        """The model's outputs for the given inputs alone: ``m.predict(x=X)``.

        Only the nodes the requested ``outputs`` (default: the model's outputs) depend on are
        run, so targets such as ``t`` are not needed; dropout is off.  Returns NumPy arrays
        by output name; rows are run ``batch_size`` at a time.  See :mod:`minigraph.inference`.
        """
        from .inference import predict

        return predict(self.graph, self.params, {**(feeds or {}), **inputs},
                       backend=self.backend, dtype=self.dtype, outputs=outputs,
                       batch_size=batch_size, seed=self.seed)

    def forward(self, feeds: dict | None = None, *, training: bool = False) -> dict:
        """Run one forward pass; returns the model's outputs as NumPy arrays."""
        if feeds is None:
            feeds = self.default_feeds()
        rng = self.backend.xp.random.default_rng(self.seed)
        self.last = self.executor.forward(self.params, feeds, training=training, rng=rng)
        return {t: to_numpy(self.last.values[t]) for t in self.graph.outputs}

    def backward(self, loss: str | None = None) -> dict:
        """Differentiate the loss (default: the model's) after :meth:`forward`."""
        if self.last is None:
            self.forward()
        grads = self.executor.backward(self.last, loss)
        return {name: to_numpy(grads[name]) for name in self.params if name in grads}

    def value(self, name: str) -> np.ndarray:
        """The value of any tensor of the last pass (or a param)."""
        if self.last is not None and name in self.last.values:
            return to_numpy(self.last.values[name])
        if name in self.params:
            return to_numpy(self.params[name])
        raise UnknownName(f"no value for tensor '{name}'{did_you_mean(name, self.graph.tensors)}"
                       + ("" if self.last else " (run forward() first)"))

    def grad(self, name: str) -> np.ndarray | None:
        """d(loss)/d(tensor) from the last backward pass (None if the loss does not reach it)."""
        if self.last is None or not self.last.grads:
            raise UnknownName("no gradients yet: call backward() first")
        if name not in self.graph.tensors:
            raise UnknownName(f"no tensor '{name}'{did_you_mean(name, self.graph.tensors)}")
        g = self.last.grads.get(name)
        return None if g is None else to_numpy(g)

    def default_feeds(self, data_dir=None) -> dict:
        """The first training batch of the file's data (``{}`` for a model without inputs)."""
        return first_batch(self.graph, data_dir, self.seed)

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Jupyter shows a model as its graph, with values and gradients once it has run."""
        return draw(self)._repr_mimebundle_(include, exclude)

    # -- saving -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return self.graph.to_dict()

    def save(self, path) -> None:
        """Write the model file (YAML or JSON by suffix); see also checkpoints for params."""
        save_model(self.graph.spec, path)


def load_splits(graph: Graph, data_dir=None):
    """The model's train and test data (paths in the file are relative to the file)."""
    spec = graph.spec
    base = Path(spec.doc.file).parent if spec.doc is not None else Path(".")
    return load_data(spec.data, {k: v.to_dict() for k, v in spec.inputs.items()},
                     base_dir=base, data_dir=data_dir, at=lambda *k: spec.at("data", *k))


def first_batch(graph: Graph, data_dir=None, seed: int = 0) -> dict:
    """The first training batch of the model's data, unshuffled (``{}`` without inputs)."""
    if not graph.inputs:
        return {}
    splits = load_splits(graph, data_dir)
    if splits.train is None:
        raise MinigraphError(f"model '{graph.name}' has inputs ({', '.join(graph.inputs)}) but "
                             "no data: add a data section, or pass the inputs yourself")
    batch = (graph.spec.train or {}).get("batch_size")
    rng = np.random.default_rng(seed)
    return next(iter(iterate_batches(splits.train, batch, shuffle=False, rng=rng)))


def load(source, **kwargs) -> Model:
    """Load a model file (YAML/JSON path), a dict, or a spec, ready to run."""
    return Model(load_graph(source), **kwargs)


def save_model(spec_or_dict, path) -> None:
    """Write a model (a spec, a dict, a :class:`Graph` or a :class:`Model`) as YAML or JSON
    (by the file's suffix); a model read from a file and not changed is written back as it
    was read, byte for byte."""
    if isinstance(spec_or_dict, (Graph, Model)):
        spec_or_dict = spec_or_dict.graph.spec if isinstance(spec_or_dict, Model) \
            else spec_or_dict.spec
    path = Path(path)
    text = dump_json(spec_or_dict) if path.suffix.lower() == ".json" else dump_yaml(spec_or_dict)
    path.write_text(text, encoding="utf-8")


# ==== drawing =====================================================================================

def run_pass(source, *, grads: bool = True, params=None, feeds=None, data_dir=None,
             backend=None) -> Model:
    """A Model after one forward pass (and a backward pass when ``grads`` and there is a loss).

    ``params``: a dict by name or a path to a checkpoint ``.npz``; ``feeds``: a dict by input
    name (default: the first training batch, read with ``data_dir`` for data sets).
    """
    if isinstance(source, Model):
        graph = source.graph
        params = dict(source.params) if params is None else params
    else:
        graph = load_graph(source)
    if isinstance(params, (str, os.PathLike)):
        params = load_checkpoint(params, params=_param_shapes(graph)).params
    model = Model(graph, backend=backend, params=params)
    feeds = first_batch(graph, data_dir, model.seed) if feeds is None else feeds
    with np.errstate(all="ignore"):  # NaN and overflow are what the picture is there to show
        model.forward(feeds)
        if grads and graph.loss is not None:
            model.backward()
    return model


def snapshot(model: Model, note: str = "") -> Snapshot:
    """Every tensor's value (and gradient, if backward ran) of a Model's last pass."""
    last = model.last
    values = {name: model.value(name) for name in model.graph.tensors
              if name in last.values or name in model.params}
    has_grads = bool(last.grads)
    grads = {name: model.grad(name) for name in model.graph.tensors} if has_grads else {}
    return Snapshot(values, {k: g for k, g in grads.items() if g is not None}, has_grads, note)


def draw(source, *, values: bool = False, grads: bool = False, params=None, feeds=None,
         data_dir=None, rankdir: str = "auto", vanishing: float = 1e-7, exploding: float = 1e3,
         legend: bool = True, title: str | None = None, fit: str | None = None,
         backend=None, all_grads: bool = False, expand=()) -> GraphPicture:
    """Draw a model (path, dict, Graph or Model).

    Without ``values``/``grads`` only the structure is drawn (no data needed).  ``grads``
    implies ``values``: one forward and backward pass on the first training batch (or
    ``feeds``), with ``params`` (a dict or a checkpoint path) instead of fresh ones if given.
    A Model that has already run is drawn with its own last pass.  Gradients are drawn for
    params and computed tensors; ``all_grads`` also for data inputs and constants.  The
    picture has its natural size (``fit``, "W,H" inches, shrinks it in Graphviz; better:
    ``picture.save(path, size=...)``, which keeps the text readable).  ``rankdir`` "LR" or
    "TB"; "auto" is left to right while that fits a 1920-px screen, else top to bottom.
    A recurrent layer is drawn with its first and last two steps
    (:func:`~minigraph.render.collapse.collapse_steps`) unless it is named in ``expand``.
    """
    scale = GradScale(vanishing, exploding)
    shot = None
    if isinstance(source, Model) and source.last is not None and params is None \
            and feeds is None:
        graph = source.graph
        shot = snapshot(source, "last pass")
    elif values or grads:
        model = run_pass(source, grads=grads, params=params, feeds=feeds, data_dir=data_dir,
                         backend=backend)
        graph = model.graph
        note = "given data" if feeds is not None else (
            "first training batch" if graph.inputs else "")
        if isinstance(params, (str, os.PathLike)):
            note += (" with " if note else "") + f"params from {Path(params).name}"
        shot = snapshot(model, note)
    else:
        graph = source.graph if isinstance(source, Model) else load_graph(source)
    drawn = collapse_steps(graph, expand)

    def make(direction):
        return build_dot(drawn, shot, rankdir=direction, scale=scale, title=title,
                         legend=legend, fit=fit, all_grads=all_grads)

    if str(rankdir).lower() == "auto":
        return auto_picture(make, graph.name)
    return GraphPicture(make(rankdir), graph.name)


def _show_graphs_in_notebooks() -> None:
    """Jupyter shows a :class:`Graph` as its picture.

    Registered with IPython's display formatter when IPython is running, so that ``graph.py``
    (below drawing) need not know about pictures.  Elsewhere: ``mg.draw(graph)``.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    shell.display_formatter.mimebundle_formatter.for_type(
        Graph, lambda graph, *args, **kwargs: draw(graph)._repr_mimebundle_())


_show_graphs_in_notebooks()


# ==== what `minigraph check`, `run` and `eval` call ===============================================

def check_model(source, *, data_dir=None, seed: int = 0, batch: int = 4, full: bool = False,
                progress=None) -> introspect.CheckReport:
    """Validate the whole file as ``run`` would, then check every param's gradient numerically.

    The graph is checked by loading; here the ``train`` section is checked exactly as the
    trainer does (its config, optimizer and schedule), and the ``data`` section is loaded as
    ``run`` loads it (named data sets too: their options and files).  The gradient check uses
    up to ``batch`` examples of the file's own training data when it is inline, a file or a
    generator; otherwise (named data sets, or no data) made-up data of the right shapes.
    By default a bounded seeded sample of each param's elements is perturbed, plus one random
    direction through all of them (``full``: every element); ``progress(done, total)`` is
    told after each element (see :func:`minigraph.gradcheck.check_gradients`).
    """
    graph = load_graph(source)
    check_training(graph)
    splits = load_splits(graph, data_dir) if graph.spec.data is not None else None
    return introspect.check_model(graph, splits, seed=seed, batch=batch, full=full,
                                  progress=progress)


class Callback:
    """What :func:`run_model` tells its caller while it trains; override what you need.

    ``on_train_begin`` once, before the first epoch: how many epochs in all (``total``), the
    epoch it starts from (``start``: a resumed run is past 0), the file's ``log_every`` and
    the :class:`~minigraph.train.Trainer` itself (its ``params`` are live).
    ``on_batch_end`` after each batch (Keras' ``on_train_batch_end``), with the step in the
    epoch (from 0) and ``logs``: the epoch's running ``loss`` and the ``examples`` seen so far.
    ``on_epoch_end`` after each epoch, with its record (``epoch``, ``loss``, metrics, ``lr``,
    ``seconds``).
    """

    def on_train_begin(self, total: int, start: int = 0, log_every: int | None = None,
                       trainer: Trainer | None = None) -> None:
        pass

    def on_batch_end(self, step: int, logs: dict) -> None:
        pass

    def on_epoch_end(self, record: dict) -> None:
        pass


class _EpochLog(Callback):
    """Writes each epoch's record as one JSON line (when logging), then tells ``callback``.

    The trainer calls it with each record, as a function or through ``on_epoch_end``.
    Each line also names the ``model`` (so that ``plot curves`` can title the figure).
    """

    def __init__(self, log_file, callback: Callback | None, model: str | None = None):
        self.log_file, self.callback, self.model = log_file, callback, model
        if callable(getattr(callback, "on_batch_end", None)):  # the trainer tells it directly
            self.on_batch_end = callback.on_batch_end

    def on_epoch_end(self, record: dict) -> None:
        if self.log_file is not None:
            line = {"model": self.model, **record} if self.model else record
            self.log_file.write(json.dumps(line) + "\n")
            self.log_file.flush()
        if self.callback is not None:
            self.callback.on_epoch_end(record)

    def __call__(self, record: dict) -> None:
        self.on_epoch_end(record)


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
    epoch: int | None = None  # training runs: the epoch reached (and saved, with --save)
    trace: str | None = None  # training runs with ``trace``: the trace file written
    quiet: bool = False  # a data-parallel rank other than 0: its caller reports nothing

    def __repr__(self) -> str:
        """One line: the model, how the run ended and its last loss and metrics."""
        name = self.graph.name
        if self.history is None:
            outs = ", ".join(f"{k} {np.shape(v)}" for k, v in (self.outputs or {}).items())
            loss = "" if self.loss is None else f", loss {self.loss:.4g}"
            return f"RunResult({name!r}, one forward pass: {outs}{loss})"
        h = self.history
        how = ("interrupted" if h.interrupted else "stopped early" if h.stopped_early
               else "done")
        numbers = "".join(f", {k} {v:.4g}" for k, v in h.last.items()
                          if k not in ("epoch", "seconds") and isinstance(v, (int, float)))
        saved = f", saved to {self.saved}" if self.saved else ""
        return (f"RunResult({name!r}, {h.last.get('epoch', 0)} epochs {how}{numbers}"
                f"{saved})")


def _forward_only(graph, backend, seed, params, data_dir) -> RunResult:
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


def _param_shapes(graph: Graph) -> dict:
    return {name: tuple(int(d) for d in t.shape) for name, t in graph.params.items()}


def _resume_from(load, graph: Graph, config):
    """The checkpoint ``load`` names, checked against the model and its optimizer."""
    try:
        optimizer = make_optimizer(config.optimizer)
    except ModelError:
        optimizer = None  # the Trainer reports it, located in the model file
    ckpt = load_checkpoint(load, params=_param_shapes(graph), optimizer=optimizer)
    if ckpt.epoch is not None and ckpt.epoch >= config.epochs:
        raise DataError(f"the checkpoint {load} is already at epoch {ckpt.epoch}, so "
                        f"{config.epochs} epochs leave nothing to train: ask for more "
                        "with --epochs")
    return ckpt


def run_model(source, *, epochs=None, batch_size=None, lr=None, seed=None, backend=None,
              save=None, load=None, log=None, data_dir=None, callback: Callback | None = None,
              train: dict | None = None, distributed: bool | None = None, trace=None,
              trace_every: int | None = None) -> RunResult:
    """Train a model file (or run one forward pass when it has no ``train`` section).

    ``train``: more overrides of the train section, by :class:`~minigraph.train.TrainConfig`
    field (e.g. ``{"optimizer": {...}, "stop_at": {}}``); with them the model trains even
    without a train section.  ``log``: one JSON line per epoch.  ``callback``: a
    :class:`Callback`.  ``distributed``: data-parallel training as one rank of an MPI job
    (``train.distributed``; see :mod:`minigraph.distributed`): only rank 0 calls back, logs
    and saves, and the other ranks' results are ``quiet``.  Without a callback, in a Jupyter
    notebook: a progress bar (:mod:`minigraph.notebook`); elsewhere none.
    ``trace``: write a training trace there (every ``trace_every`` epochs; see
    :mod:`minigraph.trace`), for the interactive page's slider.

    Ctrl-C (SIGINT, in the main thread) ends training at the last finished epoch: the result's
    ``history.interrupted`` is set and, with ``save``, the state of that epoch boundary is
    saved (a Ctrl-C while saving is held back until the file is whole).
    """
    graph = load_graph(source)
    if callback is None:  # in a notebook: a progress bar (elsewhere None, nothing shown)
        from .notebook import notebook_progress

        callback = notebook_progress()
    _check_targets(save, log, trace, trace_every)
    if graph.spec.train is None and train is None:
        _refuse_training_flags(graph, epochs=epochs, batch_size=batch_size, lr=lr, save=save,
                               log=log, distributed=distributed, trace=trace)
        ckpt = load_checkpoint(load, params=_param_shapes(graph)) if load else None
        return _forward_only(graph, backend, seed, ckpt.params if ckpt else None, data_dir)
    flags = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
    flags["distributed"] = distributed or None
    config = train_config(graph, {**(train or {}),
                                  **{k: v for k, v in flags.items() if v is not None}})
    job = distributed_job(config)  # joined now, before any data is read
    ckpt = _resume_from(load, graph, config) if load else None
    result = RunResult(graph)
    if trace:
        check_save_target(trace)
        callback = recorder = TraceRecorder(trace_every, callback)
    with interrupt_once() as guard:  # the first Ctrl-C stops training, later ones wait
        trainer = _train(graph, config, ckpt, guard, callback, backend=backend, log=log,
                         data_dir=data_dir, job=job)
        result.trainer, history = trainer, trainer.history
        save, result.quiet = (save if trainer.reports else None), not trainer.reports
        with defer_sigint(reraise=False) as held:  # the save is written whole
            trainer.rollback()
            if save:
                save_checkpoint(save, trainer.checkpoint())
                result.saved = str(save)
        history.interrupted = history.interrupted or guard.hit or held.hit
    result.history = history
    result.epoch = trainer.epoch
    if trace:
        result.trace = str(recorder.save(trace))
    if not history.interrupted:
        result.table = _small_table(trainer)
    return result


def _small_table(trainer):
    """Inputs, targets and predictions of a training set of at most 16 examples, else None."""
    if num_examples(trainer.train_data) > 16:
        return None
    host = {k: to_numpy(v) for k, v in trainer.train_data.items()}
    return {**host, **trainer.predict(host)}


def _check_targets(save, log, trace, trace_every) -> None:
    """The files a run will write can be written (checked before it starts)."""
    if save:
        check_save_target(save)
    if log:
        _check_log_target(log)
    if trace_every is not None and not trace:
        raise MinigraphError("--trace-every needs --trace FILE: the trace to record")


def _refuse_training_flags(graph, **flags) -> None:
    """A model without a train section runs one pass: flags about training cannot apply."""
    given = [f"--{k.replace('_', '-')}" for k, v in flags.items() if v]
    if given:
        raise MinigraphError(f"model '{graph.name}' has no train section, so "
                             f"{', '.join(given)} cannot apply: it runs one forward pass")


def _check_log_target(log) -> None:
    """The ``--log`` file can be written: its folder exists and it is not a folder."""
    path = Path(log)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise MinigraphError(f"cannot write the log {log}: folder {folder} does not exist")
    if path.is_dir():
        raise MinigraphError(f"cannot write the log {log}: it is a folder")


def _open_log(log):
    """The ``--log`` file, opened for writing (one JSON line per epoch)."""
    try:
        return open(log, "w", encoding="utf-8")  # noqa: SIM115  (closed by _train)
    except OSError as exc:
        raise MinigraphError(f"cannot write the log {log}: {exc.strerror or exc}") from None


def distributed_job(config):
    """The MPI job this process is a rank of when ``config.distributed``, else None."""
    return join_job() if config.distributed else None


def _train(graph: Graph, config, ckpt, guard, callback, *, backend, log, data_dir,
           job=None) -> Trainer:
    """Make the trainer and fit, writing the log; returns it with its ``history`` set.

    A Ctrl-C before or just after ``fit`` marks the history interrupted (one while loading,
    before there is a trainer, is raised: there is nothing to save).
    """
    trainer = log_file = None
    try:
        make = Trainer if job is None else functools.partial(DataParallelTrainer, job=job)
        trainer = make(graph, config, load_splits(graph, data_dir), backend=backend,
                       checkpoint=ckpt)
        if not trainer.reports:  # a data-parallel rank other than 0
            callback, log = None, None
        log_file = _open_log(log) if log else None
        if callback is not None:
            callback.on_train_begin(total=config.epochs, start=trainer.epoch,
                                    log_every=config.log_every, trainer=trainer)
        trainer.fit(_EpochLog(log_file, callback, graph.name))
    except KeyboardInterrupt:  # before fit() began, or just as it returned
        if trainer is None:
            raise  # while loading: nothing to save
        if trainer.history is None:
            trainer.history = History()
        trainer.history.interrupted = True
    finally:
        guard.disarm()
        if log_file is not None:
            log_file.close()
    return trainer


def evaluate_model(source, params, *, data_dir=None, backend=None) -> dict:
    """Loss and metrics of saved params on the test data (the training data if none)."""
    graph = load_graph(source)
    config = train_config(graph)
    ckpt = load_checkpoint(params, params=_param_shapes(graph))
    splits = load_splits(graph, data_dir)
    which = "test" if splits.test is not None else "train"
    data = DataSplits(train=splits.test if splits.test is not None else splits.train, test=None)
    trainer = Trainer(graph, config, data, backend=backend,
                      checkpoint=Checkpoint(ckpt.params))
    result = trainer.evaluate(trainer.train_data)
    result["split"] = which
    result["examples"] = num_examples(trainer.train_data)
    return result
