"""Backpropagation through time, measured: how large d(loss)/d(x_t) is at each step t.

:func:`bptt_profile` runs one forward and backward pass of a model with a recurrent layer on
its first training batch and returns, for each step t, the mean |dL/dx_t| over the batch and
the features (x is the recurrent layer's input, ``(batch, T, F)``).  A tanh RNN's profile
falls geometrically towards t = 1 -- the gradient vanishes through time -- an LSTM's much
less.  :func:`plot_bptt` draws the profiles of one or more models as bars on a log scale
(``minigraph plot bptt``; matplotlib is the optional ``plot`` extra).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .api import run_pass
from .errors import MinigraphError
from .plots import _figure, _finish, _require_matplotlib
from .render.collapse import recurrent_layers


@dataclass
class Profile:
    """Mean |dL/dx_t| for t = 1 ... T of one model's recurrent layer."""

    model: str
    layer: str
    tensor: str
    sizes: np.ndarray  # (T,)

    @property
    def ratio(self) -> float:
        """|dL/dx_1| / |dL/dx_T|: how much of the gradient reaches the first step."""
        return float(self.sizes[0] / self.sizes[-1]) if self.sizes[-1] else float("nan")


def bptt_profile(source, *, params=None, layer: str | None = None, data_dir=None) -> Profile:
    """Mean |dL/dx_t| per step t of ``layer`` (default: the model's first recurrent layer),
    from one pass on the first training batch (``params``: a dict or a checkpoint path)."""
    model = run_pass(source, grads=True, params=params, data_dir=data_dir)
    graph = model.graph
    layers = recurrent_layers(graph)
    if not layers:
        raise MinigraphError(f"model '{graph.name}' has no recurrent layer (rnn, lstm, gru) "
                             "to measure through time")
    if layer is None:
        layer = next(iter(layers))
    elif layer not in layers:
        raise MinigraphError(f"no recurrent layer '{layer}' in '{graph.name}'; its recurrent "
                             f"layers: {', '.join(layers)}")
    if graph.loss is None:
        raise MinigraphError(f"model '{graph.name}' has no loss: nothing to differentiate")
    x = graph.groups()[f"{layer}/t1"][0].spec.inputs[0]
    grad = model.grad(x)
    if grad is None or grad.ndim != 3:
        raise MinigraphError(f"no gradient of shape (batch, T, F) reaches '{x}', the input "
                             f"of '{layer}'")
    sizes = np.abs(grad.astype(np.float64)).mean(axis=(0, 2))
    return Profile(graph.name, layer, x, sizes)


def plot_bptt(sources, out=None, *, params=(), data_dir=None):
    """Bars of mean |dL/dx_t| over t (log scale), one colour per model; saves to ``out``
    (or returns the Figure).  ``params``: checkpoint paths, matched to ``sources`` in order."""
    _require_matplotlib()
    params = list(params) + [None] * (len(sources) - len(params))
    profiles = [bptt_profile(s, params=p, data_dir=data_dir) for s, p in zip(sources, params)]
    fig = _figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(profiles)
    for k, prof in enumerate(profiles):
        steps = np.arange(1, len(prof.sizes) + 1)
        ax.bar(steps + (k - (len(profiles) - 1) / 2) * width, prof.sizes, width,
               label=f"{prof.model} ({prof.layer}): first/last = {prof.ratio:.1e}")
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel(f"mean |dL/d{profiles[0].tensor}_t|")
    ax.set_title("Backpropagation through time: the gradient reaching each step")
    ax.legend(loc="upper left", fontsize=9)
    return _finish(fig, out)


def default_name(sources) -> str:
    return "_".join(Path(str(s)).stem for s in sources) + "_bptt.png"
