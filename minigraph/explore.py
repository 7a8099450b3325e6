"""The interactive page of a model: ``minigraph render --format html`` and ``minigraph view``.

:func:`page_html` runs one forward and backward pass (as ``render --grads`` does, on the
first training batch, with fresh params or a checkpoint's), or reads a training trace
(``run --trace``), and hands the numbers to :func:`minigraph.render.html.build_page` with the
graph's SVG (the structure drawing of ``render --format svg``).  :func:`write_page` writes it;
:func:`open_page` writes it to a temporary file and opens the browser.  Nothing here prints.
"""
from __future__ import annotations

import os
import tempfile
import webbrowser
from pathlib import Path

from .api import _param_shapes, load_graph, run_pass
from .checkpoint import load_checkpoint
from .errors import MinigraphError
from .render import GradScale, GraphPicture, build_dot
from .render.html import build_page
from .render.summary import summarize_pass, summarize_slots
from .trace import load_trace


def pass_step(model, label: str, slots: dict | None = None) -> dict:
    """One page step from a Model that has run: every tensor's value and gradient."""
    graph, last = model.graph, model.last
    values = {name: model.value(name) for name in graph.tensors
              if name in last.values or name in model.params}
    grads = None
    if last.grads:
        grads = {}
        for name in graph.tensors:
            g = model.grad(name)
            if g is not None:
                grads[name] = g
    return {"label": label, "epoch": None, "record": {}, "t": summarize_pass(graph, values, grads),
            "o": summarize_slots(slots or {})}


def _pass_steps(graph, params, data_dir, backend) -> tuple:
    """(steps, note) of a page made from one pass (fresh params or a checkpoint's)."""
    slots, note = {}, "first training batch" if graph.inputs else ""
    if params is not None:
        ckpt = load_checkpoint(params, params=_param_shapes(graph))
        slots, note = ckpt.optimizer, note + (" with " if note else "") + \
            f"params from {Path(params).name}"
        params = ckpt.params
    model = run_pass(graph, params=params, data_dir=data_dir, backend=backend)
    return [pass_step(model, note or "one pass", slots)], note


def page_html(source, *, params=None, trace=None, data_dir=None, rankdir: str = "LR",
              vanishing: float = 1e-7, exploding: float = 1e3, backend=None,
              title: str | None = None) -> str:
    """The interactive page of a model (path, dict or Graph) as HTML text.

    ``params``: a checkpoint (its params, and its optimizer state shown on params);
    ``trace``: a ``run --trace`` file, whose recorded steps the page's slider scrubs through.
    """
    graph = load_graph(source)
    scale = GradScale(vanishing, exploding)
    curve = None
    if trace is not None:
        data = load_trace(trace, graph)
        steps, curve = data["steps"], data["curve"]
        every = data.get("every")
        note = "probe: the first training batch; recorded " + (
            "every epoch" if every == 1 else f"every {every} epochs")
    else:
        steps, note = _pass_steps(graph, params, data_dir, backend)
    svg = GraphPicture(build_dot(graph, rankdir=rankdir, fit=None), graph.name).svg(hover=False)
    return build_page(graph, svg, steps, scale=scale, title=title, curve=curve, note=note)


def write_page(source, path, **options) -> Path:
    """Write :func:`page_html` to ``path``; returns the path."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise MinigraphError(f"cannot write {path}: folder {folder} does not exist")
    text = page_html(source, **options)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MinigraphError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def open_page(source, **options) -> Path:
    """Write the page to a temporary file and open it in the web browser; returns the path."""
    graph = load_graph(source)
    fd, name = tempfile.mkstemp(prefix=f"minigraph-{graph.name}-", suffix=".html")
    os.close(fd)
    path = write_page(graph, name, **options)
    webbrowser.open(path.resolve().as_uri())
    return path
