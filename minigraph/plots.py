"""Plots of training: loss and metric curves, decision boundaries, optimizer races.

matplotlib is an optional extra (``pip install 'minigraph[plot]'``), imported only inside these
functions.  Each function saves its figure to ``out`` and returns the path, or returns the
matplotlib ``Figure`` when ``out`` is None (for notebooks).  The numbers come from minigraph's
own API: the ``--log`` file of ``minigraph run``, :class:`~minigraph.api.Model` passes and
:func:`~minigraph.api.run_model` runs (the one way these plots train).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .api import Callback, Model, load_graph, load_splits, run_model
from .backend import to_numpy
from .checkpoint import load_checkpoint
from .engine import init_params
from .errors import MinigraphError, RunError
from .text import format_number
from .train import train_config

MISSING = "matplotlib is not installed: pip install 'minigraph[plot]'"
NOT_METRICS = ("epoch", "lr", "seconds", "model")


def _require_matplotlib() -> None:
    """Fail before any training when the plot could not be drawn anyway."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MinigraphError(MISSING) from None


def _figure(*args, **kwargs):
    """A new matplotlib Figure (object API: no pyplot, no global backend switch)."""
    _require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(*args, **kwargs)


def _finish(fig, out):
    if out is None:
        return fig
    out = Path(out)
    if not out.parent.is_dir():
        raise MinigraphError(f"cannot write {out}: folder {out.parent} does not exist")
    kinds = fig.canvas.get_supported_filetypes()
    if out.suffix.lstrip(".").lower() not in kinds:
        raise MinigraphError(f"cannot write {out}: a plot is saved as one of "
                             f"{', '.join('.' + k for k in sorted(kinds))}")
    fig.savefig(out, dpi=120, bbox_inches="tight")
    return out


# ==== loss and metric curves ======================================================================

def read_log(log_path) -> list:
    """The records of a ``minigraph run --log`` file (one JSON object per line)."""
    path = Path(log_path)
    if not path.is_file():
        raise MinigraphError(f"no log file at {path} (write one with minigraph run --log)")
    records = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MinigraphError(f"{path} is not a text log file (write one with minigraph run "
                             "--log)") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MinigraphError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
        if not isinstance(record, dict):
            raise MinigraphError(f"{path}:{number}: expected a JSON object per line")
        records.append(record)
    if not records:
        raise MinigraphError(f"{path} has no records (is it a minigraph run --log file?)")
    return records


def plot_log(log_path, out=None, *, title: str | None = None):
    """Loss and each metric against the epoch: train solid, test dashed (when logged).

    The loss axis is logarithmic when the loss is positive and spans two decades or more;
    the learning rate gets its own panel when a schedule changed it.
    """
    _require_matplotlib()
    records = read_log(log_path)
    keys = []
    for record in records:
        for key, value in record.items():
            if key not in NOT_METRICS and key not in keys and isinstance(value, (int, float)):
                keys.append(key)
    bases = []
    for key in keys:
        base = key[5:] if key.startswith("test_") else key
        if base not in bases:
            bases.append(base)
    lrs = [r.get("lr") for r in records if isinstance(r.get("lr"), (int, float))]
    show_lr = len(set(lrs)) > 1
    panels = bases + (["lr"] if show_lr else [])
    if not panels:
        raise MinigraphError(f"{log_path} has no loss or metric values to plot")

    fig = _figure(figsize=(5 * len(panels), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, base in zip(axes, panels):
        for key, style, label in ((base, "-", "train"), (f"test_{base}", "--", "test")):
            if base == "lr" and label == "test":
                continue
            points = [(r["epoch"], r[key]) for r in records
                      if isinstance(r.get(key), (int, float)) and "epoch" in r]
            if points:
                epochs, values = zip(*points)
                ax.plot(epochs, values, style, label=label if base != "lr" else "lr")
                if base == "loss":
                    positive = [v for v in values if v > 0 and math.isfinite(v)]
                    if len(positive) == len(values) and max(positive) / min(positive) >= 100:
                        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(base)
        ax.grid(True, alpha=0.3)
        if base != "lr":
            ax.legend()
    fig.suptitle(title or log_title(records, log_path))
    return _finish(fig, out)


def log_title(records: list, log_path) -> str:
    """The figure's title: the model's name that ``run --log`` stores in each record (logs
    written before it did: the file's name)."""
    names = [r["model"] for r in records if isinstance(r.get("model"), str)]
    if not names:
        return Path(log_path).stem
    return f"{names[0]}: training curves ({Path(log_path).name})"


# ==== decision boundary ===========================================================================

def _trained_params(graph, params, data_dir) -> dict:
    """Params by name: from a checkpoint, else trained now (or initial, with no train section)."""
    if params is not None:
        return load_checkpoint(params).params if isinstance(params, (str, Path)) else params
    if graph.spec.train is None:
        return {k: to_numpy(v) for k, v in init_params(graph).items()}
    result = run_model(graph, data_dir=data_dir)
    if result.history is not None and result.history.interrupted:
        raise RunError("training was interrupted")
    return {k: to_numpy(v) for k, v in result.trainer.params.items()}


def _feature_and_targets(graph, output):
    """The input the prediction reads, and the other inputs (the targets)."""
    seen, todo = set(), [output]
    while todo:  # everything the first output is computed from
        t = todo.pop()
        if t not in seen:
            seen.add(t)
            producer = graph.tensors[t].producer
            if producer is not None:
                todo.extend(graph.node(producer).inputs)
    features = [t for t in graph.inputs if t in seen]
    targets = [t for t in graph.inputs if t not in seen]
    if len(features) != 1 or list(graph.inputs[features[0]].shape[1:]) != [2]:
        shapes = ", ".join(f"{k} {v.shape}" for k, v in graph.inputs.items())
        raise MinigraphError(f"a decision boundary needs a classifier with one input of two "
                             f"features, shape [batch, 2]; model '{graph.name}' has {shapes}")
    return features[0], targets


def _dummy(spec, n):
    """Zeros standing in for an input the prediction does not need (the targets)."""
    shape = [n if isinstance(d, str) or d is None else d for d in spec.shape]
    return np.zeros(shape, dtype=spec.real_dtype)


def _boundary_output(graph, output) -> str:
    """The output to draw: the one asked for, else the model's first."""
    if not graph.outputs:
        raise MinigraphError(f"model '{graph.name}' has no outputs to classify with")
    output = output or graph.outputs[0]
    if output not in graph.outputs:
        raise MinigraphError(f"'{output}' is not an output of model '{graph.name}'; its "
                             f"outputs: {', '.join(graph.outputs)}")
    return output


def _training_points(graph, data_dir, feature, targets):
    """The training set's points (float64) and their targets (None without a target input)."""
    splits = load_splits(graph, data_dir)
    if splits.train is None:
        raise MinigraphError(f"model '{graph.name}' has no training data to draw")
    x = np.asarray(splits.train[feature], dtype=np.float64)
    t = np.asarray(splits.train[targets[0]]) if targets else None
    return x, t


def _boundary_grid(x, resolution: int):
    """The frame around the points (padded by 15% of the wider spread) and its meshgrid."""
    pad = 0.15 * max(np.ptp(x[:, 0]), np.ptp(x[:, 1]), 1e-3)
    lo, hi = x.min(axis=0) - pad, x.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                         np.linspace(lo[1], hi[1], resolution))
    return lo, hi, gx, gy


def _grid_scores(graph, model, feature, output, gx, gy):
    """The output at every grid point, one row per point (other inputs fed zeros)."""
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    feeds = {feature: grid.astype(graph.inputs[feature].real_dtype)}
    for name in graph.inputs:
        if name != feature:
            feeds[name] = _dummy(graph.inputs[name], len(grid))
    score = np.asarray(model.forward(feeds)[output], dtype=np.float64)
    return score.reshape(len(grid), -1)


def _boundary_classes(graph, score, t):
    """The threshold (one score column, else None) and each training point's class."""
    if score.shape[1] == 1:
        config = train_config(graph) if graph.spec.train is not None else None
        level = config.threshold if config is not None and config.threshold is not None \
            else (0.0 if t is not None and np.min(t) < 0 else 0.5)
        return level, None if t is None else (np.ravel(t) > level).astype(int)
    cls = None if t is None else (t.argmax(axis=1) if t.ndim == 2 and t.shape[1] > 1
                                  else np.ravel(t).astype(int))
    return None, cls


def _draw_score_map(fig, ax, gx, gy, score, level, output):
    """One score column: filled contours centred on the threshold, and its contour line."""
    z = score[:, 0].reshape(gx.shape)
    from matplotlib.colors import TwoSlopeNorm

    inside = z.min() < level < z.max()
    norm = TwoSlopeNorm(level, z.min(), z.max()) if inside else None
    filled = ax.contourf(gx, gy, z, levels=20, cmap="RdBu_r", alpha=0.55, norm=norm)
    fig.colorbar(filled, ax=ax, label=output)
    if inside:
        ax.contour(gx, gy, z, levels=[level], colors="black", linewidths=2)


def _draw_class_map(ax, gx, gy, score):
    """Several score columns: the argmax class as flat regions."""
    z = score.argmax(axis=1).reshape(gx.shape)
    ax.contourf(gx, gy, z, levels=np.arange(score.shape[1] + 1) - 0.5, cmap="tab10",
                alpha=0.35)


def _draw_points(ax, x, cls, two_classes: bool):
    """The training points, one colour and marker per class (black without targets)."""
    size = 70 if len(x) <= 50 else 22
    if cls is None:
        ax.scatter(x[:, 0], x[:, 1], s=size, c="black")
        return
    two = ["#1f4fbf", "#d62728"]  # the ends of RdBu_r, solid so points stand out
    markers = "os^vDP*Xph"
    for c in np.unique(cls):
        mask = cls == c
        color = two[int(c)] if two_classes else f"C{int(c) % 10}"
        ax.scatter(x[mask, 0], x[mask, 1], s=size, c=color, edgecolors="white",
                   linewidths=0.8, marker=markers[int(c) % len(markers)],
                   label=f"class {c}")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)


def plot_decision_boundary(model_path, params=None, out=None, *, data_dir=None,
                           resolution: int = 200, output: str | None = None):
    """Where a trained 2-input classifier says which class, with its training points.

    ``params``: a checkpoint path or a dict; None trains the model first (as ``minigraph
    run`` would).  ``output`` picks the output to draw (default: the model's first).  One
    column is read as a score with threshold ``train.threshold``, else 0 for -1/+1 targets
    and 0.5 otherwise; several columns as class scores (argmax).
    """
    _require_matplotlib()
    graph = load_graph(model_path)
    output = _boundary_output(graph, output)
    feature, targets = _feature_and_targets(graph, output)
    x, t = _training_points(graph, data_dir, feature, targets)
    model = Model(graph, params=_trained_params(graph, params, data_dir))
    lo, hi, gx, gy = _boundary_grid(x, resolution)
    score = _grid_scores(graph, model, feature, output, gx, gy)
    level, cls = _boundary_classes(graph, score, t)

    fig = _figure(figsize=(6, 5.2), layout="constrained")
    ax = fig.subplots()
    if score.shape[1] == 1:
        _draw_score_map(fig, ax, gx, gy, score, level, output)
    else:
        _draw_class_map(ax, gx, gy, score)
    _draw_points(ax, x, cls, score.shape[1] == 1)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel(f"{feature}[0]")
    ax.set_ylabel(f"{feature}[1]")
    ax.set_title(f"{graph.name}: decision boundary")
    return _finish(fig, out)


# ==== optimizer race ==============================================================================

def _race_configs(optimizers, default_lr=None) -> list:
    """Optimizer configs from names, ``"name:lr"`` strings or dicts (default: every one)."""
    from .optim import OPTIMIZERS

    if optimizers is None:
        optimizers = list(OPTIMIZERS)
    configs = []
    for item in optimizers:
        if isinstance(item, dict):
            configs.append(dict(item))
            continue
        name, _, lr = str(item).partition(":")
        config = {"type": name.strip()}
        if lr:
            try:
                config["lr"] = float(lr)
            except ValueError:
                raise MinigraphError(f"bad learning rate in {item!r}; write name:lr, "
                                     "e.g. adam:0.01") from None
        elif default_lr is not None:
            config["lr"] = default_lr
        configs.append(config)
    for config in configs:  # the optimizer's own default, so that every label names its lr
        if "lr" not in config:
            config["lr"] = _default_lr(config)
    return configs


def _default_lr(config: dict):
    """The learning rate an optimizer uses when its config gives none."""
    from .optim import make_optimizer
    from .options import OptionError

    try:
        return make_optimizer({"type": config["type"]}).lr
    except (OptionError, MinigraphError, KeyError):
        return None  # an unknown type: the race itself reports it


def race_paths(model_path, optimizers=None, *, epochs: int | None = None,
               lr: float | None = None) -> dict:
    """Train the two-parameter model once per optimizer; returns label -> (steps+1, 2) path.

    Each optimizer starts from the model's initial params; the point is recorded before
    training and after every epoch.  A run whose loss becomes NaN or infinite stops there
    (its label ends in "diverged").  Without an ``lr`` (in the item, as ``"name:lr"``, or
    the ``lr`` argument) each optimizer uses its own default learning rate.
    """
    graph = load_graph(model_path)
    sizes = {name: int(np.prod(p.shape)) for name, p in graph.params.items()}
    if sum(sizes.values()) != 2:
        raise MinigraphError(f"an optimizer race needs a model with exactly two parameter "
                             f"values (a point in the plane); '{graph.name}' has "
                             f"{sum(sizes.values())} ({', '.join(sizes) or 'none'})")
    load_splits(graph)  # the data's mistakes first, before any optimizer runs
    paths = {}
    for config in _race_configs(optimizers, lr):
        path = _PathRecorder(sizes)
        label = config["type"] + (f" (lr {config['lr']:g})" if config.get("lr") else "")
        if config.get("lr") is None:
            config.pop("lr", None)
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is a result here
                # every optimizer runs its full epochs: an empty stop_at never stops early
                run_model(graph, epochs=epochs, callback=path,
                          train={"optimizer": dict(config), "stop_at": {}})
        except RunError:
            label += ", diverged"
        points = np.array(path.points, dtype=np.float64)
        if not np.isfinite(points).all():
            points = points[:np.argmin(np.isfinite(points).all(axis=1))]
            label += "" if "diverged" in label else ", diverged"
        paths[label] = points
    return paths


class _PathRecorder(Callback):
    """The two parameter values before training and after every epoch."""

    def __init__(self, sizes: dict):
        self.sizes, self.trainer, self.points = sizes, None, []

    def _point(self):
        return np.concatenate([np.ravel(to_numpy(self.trainer.params[n])) for n in self.sizes])

    def on_train_begin(self, total, start=0, log_every=None, trainer=None):
        self.trainer = trainer
        self.points.append(self._point())

    def on_epoch_end(self, record):
        self.points.append(self._point())


def _race_frame(paths: dict):
    """The plot's corners: around the converged paths (all paths if none converged)."""
    # Frame the runs that converged; a diverged path is drawn until it leaves the frame.
    kept = [p for label, p in paths.items() if len(p) and "diverged" not in label]
    points = np.concatenate(kept or [p for p in paths.values() if len(p)])
    points = points[np.all(np.abs(points) < 1e6, axis=1)]
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.maximum(hi - lo, 0.5)
    return lo - 0.15 * span, hi + 0.15 * span


def _loss_surface(graph, lo, hi, resolution: int, names, shapes):
    """The loss on the training data at every point of a grid over the frame."""
    model = Model(graph)
    feeds = _race_feeds(graph)
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                         np.linspace(lo[1], hi[1], resolution))
    loss = np.empty(gx.shape)
    for idx in np.ndindex(gx.shape):
        model.set_params(_split_point(np.array([gx[idx], gy[idx]]), names, shapes))
        with np.errstate(over="ignore", invalid="ignore"):
            model.forward(feeds)
        loss[idx] = float(model.value(graph.loss).reshape(()))
    return gx, gy, loss


def _draw_loss_surface(ax, gx, gy, loss):
    """Filled contours and contour lines: log-spaced for a positive loss, else linear."""
    finite = loss[np.isfinite(loss)]
    if finite.size and finite.min() >= 0 and finite.max() > 0:
        floor = max(finite.min(), finite.max() * 1e-6, 1e-12)
        levels = np.logspace(np.log10(floor), np.log10(finite.max()), 25)
        surface = np.clip(loss, floor, None)
        norm = _log_norm(floor, finite.max())
        ax.contourf(gx, gy, surface, levels=levels, cmap="Blues_r", norm=norm, alpha=0.45)
        ax.contour(gx, gy, surface, levels=levels, colors="#555555", linewidths=0.4,
                   alpha=0.6)
    elif finite.size:
        ax.contourf(gx, gy, loss, levels=25, cmap="Blues_r", alpha=0.45)
        ax.contour(gx, gy, loss, levels=25, colors="#555555", linewidths=0.4, alpha=0.6)


def _draw_paths(ax, paths: dict, start, final_loss: dict):
    """Each optimizer's path in its own colour with a dot at its end; a star at the start.

    Labels give the learning rate and the loss where the path ends.  Longer paths are drawn
    first, so that a short one (adagrad's, which stops early on the way down the wall) lies
    on top of the longer ones that pass over the same ground and stays visible.
    """
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
              "#17becf", "#bcbd22", "#7f7f7f"]
    styled = list(zip(paths.items(), colors * 4))
    order = sorted(range(len(styled)), key=lambda i: -_path_length(styled[i][0][1]))
    for rank, i in enumerate(order):
        (label, path), color = styled[i]
        if len(path):
            loss = final_loss.get(label)
            text = label + (f": final loss {format_number(loss, 3)}" if loss is not None
                            else "")
            ax.plot(path[:, 0], path[:, 1], "-", color=color, lw=1.8, label=text,
                    zorder=3 + rank)
            ax.plot(path[-1, 0], path[-1, 1], "o", color=color, ms=7, mec="white",
                    mew=1.0, zorder=3 + len(order) + rank)
    ax.plot(start[0], start[1], "k*", ms=13, label="start", zorder=30)


def _legend(ax, paths: dict):
    """The legend in the order the optimizers were asked for (the drawing order differs),
    then the start and the lowest point."""
    handles, labels = ax.get_legend_handles_labels()
    ordered = [lbl for name in paths for lbl in labels if lbl.split(":")[0] == name]
    ordered += [lbl for lbl in labels if lbl not in ordered]
    keep = [labels.index(lbl) for lbl in ordered]
    ax.legend([handles[k] for k in keep], [labels[k] for k in keep], fontsize=8, loc="best",
              framealpha=0.92)


def _path_length(path) -> float:
    return float(np.abs(np.diff(path, axis=0)).sum()) if len(path) > 1 else 0.0


def _mark_minimum(ax, gx, gy, loss, ends: dict):
    """The lowest point seen, among the grid and the paths' ends: a white cross (under the
    paths' end dots, which it must not hide)."""
    candidates = list(ends.values())
    finite = np.where(np.isfinite(loss), loss, np.inf)
    k = np.unravel_index(np.argmin(finite), finite.shape)
    if np.isfinite(finite[k]):
        candidates.append(((gx[k], gy[k]), float(finite[k])))
    candidates = [c for c in candidates if c[1] is not None and math.isfinite(c[1])]
    if not candidates:
        return
    (x, y), value = min(candidates, key=lambda c: c[1])
    ax.plot(x, y, "X", color="white", mec="black", mew=1.2, ms=15, zorder=2.9,
            label=f"lowest loss seen: {format_number(value, 3)} at "
                  f"({format_number(x, 3)}, {format_number(y, 3)})")


def _param_labels(names, shapes) -> list:
    """One axis label per parameter value: the param's name, indexed when it has several."""
    return [f"{n}{'' if int(np.prod(shapes[n])) == 1 else '[' + str(i) + ']'}"
            for n in names for i in range(int(np.prod(shapes[n])))]


def plot_optimizer_race(model_path, out=None, optimizers=None, *, epochs: int | None = None,
                        lr: float | None = None, resolution: int = 90):
    """The paths of several optimizers over the contour lines of a 2-parameter loss.

    ``optimizers``: names (``"adam"``), ``"name:lr"`` strings or config dicts; default all
    nine.  The loss surface is evaluated with :class:`~minigraph.api.Model` on the
    model's training data at every point of a grid around the paths.
    """
    _require_matplotlib()
    graph = load_graph(model_path)
    paths = race_paths(graph, optimizers, epochs=epochs, lr=lr)
    names = list(graph.params)
    shapes = {n: tuple(graph.params[n].shape) for n in names}
    lo, hi = _race_frame(paths)
    start = next(iter(paths.values()))[0]
    gx, gy, loss = _loss_surface(graph, lo, hi, resolution, names, shapes)

    ends = _path_ends(graph, paths, names, shapes)
    fig = _figure(figsize=(9, 6.5), layout="constrained")
    ax = fig.subplots()
    _draw_loss_surface(ax, gx, gy, loss)
    _draw_paths(ax, paths, start, {k: v[1] for k, v in ends.items()})
    _mark_minimum(ax, gx, gy, loss, ends)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    labels = _param_labels(names, shapes)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(f"{graph.name}: optimizer paths on the loss {graph.loss}")
    _legend(ax, paths)
    return _finish(fig, out)


def _path_ends(graph, paths: dict, names, shapes) -> dict:
    """label -> (the path's last point, the loss there) (None for an empty path)."""
    model, feeds, ends = Model(graph), _race_feeds(graph), {}
    for label, path in paths.items():
        if len(path):
            ends[label] = (tuple(path[-1]), _loss_at(graph, model, feeds, path[-1], names,
                                                     shapes))
    return ends


def _loss_at(graph, model, feeds, point, names, shapes) -> float | None:
    model.set_params(_split_point(np.asarray(point, dtype=np.float64), names, shapes))
    with np.errstate(over="ignore", invalid="ignore"):
        model.forward(feeds)
    value = float(model.value(graph.loss).reshape(()))
    return value if math.isfinite(value) else None


def _log_norm(lo, hi):
    from matplotlib.colors import LogNorm

    return LogNorm(vmin=lo, vmax=hi)


def _split_point(point, names, shapes) -> dict:
    out, i = {}, 0
    for n in names:
        size = int(np.prod(shapes[n]))
        out[n] = point[i:i + size].reshape(shapes[n])
        i += size
    return out


def _race_feeds(graph) -> dict:
    """The whole training set as one batch (the race trains full batch on tiny data)."""
    if not graph.inputs:
        return {}
    splits = load_splits(graph)
    return dict(splits.train) if splits.train is not None else {}
