"""The interactive page: one self-contained HTML file to explore a graph's computation.

``build_page(graph, svg, steps)`` puts together

* the Graphviz SVG of the graph's structure (the same layout as ``render --format svg``),
* the data as inline JSON: the graph (nodes with their op's local rule, tensors, the forward
  schedule and the backward order, which SVG element draws what) and one or more *steps*,
  each the values and gradients of one pass as :func:`~minigraph.render.summary.summarize`
  gives them (one step for a page of one pass; one per recorded step of a training trace),
* and the small plain script and style sheet of ``assets/`` (no library, no request of any
  kind: a Content-Security-Policy forbids every fetch, so the file works from ``file://``).

Pure presentation, as the rest of ``render/``: the caller runs the passes
(:mod:`minigraph.explore`) and hands over the numbers.
"""
from __future__ import annotations

import html
import json
import math
import re
from importlib import resources

from ..ops.base import rule_of
from ..graph import ancestors
from .dot import EXPLODING_COLOR, NAN_COLOR, VANISHING_COLOR, GradScale, Layout

ASSETS = ("page.html", "page.css", "page.js")
POLICY = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
          "img-src data:")


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


# ==== the graph as data ===========================================================================

def _binding(node) -> dict:
    """The op's declared input names -> the node's tensors (a list for ``xs*``)."""
    out, names = {}, list(node.op.inputs)
    for i, declared in enumerate(names):
        key = declared.rstrip("?*")
        if declared.endswith("*"):
            out[key] = list(node.inputs[i:])
        elif i < len(node.inputs):
            out[key] = node.inputs[i]
    return out


def _node_entry(node) -> dict:
    rule = rule_of(type(node.op))
    attrs = {k: v for k, v in node.op.attr_values().items()
             if isinstance(v, (int, float, str, list, type(None)))}
    return {"name": node.name, "op": node.op_name, "inputs": list(node.inputs),
            "output": node.outputs[0], "group": node.group, "attrs": attrs,
            "bind": _binding(node),
            "rule": {"words": rule.words, "forward": rule.forward,
                     "backward": dict(rule.backward)}}


def _schedules(graph) -> tuple:
    """(forward node indices, backward node indices, tensor -> backward index after which
    its gradient is complete; -1 for the loss, which is seeded with 1)."""
    forward = list(range(len(graph.nodes)))
    if graph.loss is None:
        return forward, [], {}
    reach = ancestors(graph, graph.loss)
    backward = [i for i in reversed(forward) if graph.nodes[i].outputs[0] in reach
                and graph.nodes[i].op.differentiable]
    done = {graph.loss: -1}
    for k, i in enumerate(backward):
        for t in graph.nodes[i].inputs:
            if t in reach and graph.tensors[t].dtype.startswith("float"):
                done[t] = k  # the last reader in backward order completes the sum
    return forward, backward, done


def _svg_ids(graph) -> dict:
    """SVG node id (the DOT node name) -> ``{"tensor": name}`` or ``{"node": index}``."""
    ids = Layout.of(graph, compact=True).ids
    index = {node.name: i for i, node in enumerate(graph.nodes)}
    return {dot_id: ({"node": index[name]} if name in index else {"tensor": name})
            for name, dot_id in ids.items()}


def _clusters(graph) -> dict:
    """``cluster_N`` (as drawn) -> its layer group's name."""
    out, seen = {}, []
    for node in graph.nodes:
        if node.group and node.group not in seen:
            seen.append(node.group)
            out[f"cluster_{len(seen)}"] = node.group
    return out


def graph_data(graph) -> dict:
    """Everything the page needs to know about the graph itself (no numbers)."""
    forward, backward, done = _schedules(graph)
    layout = Layout.of(graph, compact=True)
    tensors = {}
    index = {node.name: i for i, node in enumerate(graph.nodes)}
    for name, t in graph.tensors.items():
        tensors[name] = {"kind": t.kind, "dtype": t.dtype,
                         "producer": index.get(t.producer) if t.producer else None,
                         "readers": [index[n.name] for n in layout.readers[name]],
                         "home": layout.home.get(name)}
    return {"model": graph.name, "loss": graph.loss, "outputs": list(graph.outputs),
            "nodes": [_node_entry(n) for n in graph.nodes], "tensors": tensors,
            "forward": forward, "backward": backward, "gradDone": done,
            "ids": _svg_ids(graph), "clusters": _clusters(graph)}


# ==== the edges' style, from a step's numbers =====================================================

def edge_style(scale: GradScale, value: dict | None, grad: dict | None) -> dict:
    """How a tensor's edges are drawn at one step, from its summaries (as the static picture
    draws them from arrays): ``{"kind", "color", "width", "dash"}``."""
    for s in (grad, value):
        if s is not None and s.get("nonfinite"):
            return {"kind": "nan", "color": NAN_COLOR, "width": 4, "dash": False}
    if grad is None:
        return {"kind": "none", "color": "", "width": 1, "dash": False}
    size = grad.get("absmax", 0.0) or 0.0
    if size == 0 or size < scale.vanishing:
        return {"kind": "zero" if size == 0 else "vanishing", "color": VANISHING_COLOR,
                "width": 1, "dash": True}
    if size > scale.exploding:
        return {"kind": "exploding", "color": EXPLODING_COLOR, "width": 6, "dash": False}
    return {"kind": "normal", "color": scale.color(size),
            "width": round(1 + 3.5 * scale.position(size), 2), "dash": False}


def styled_steps(steps: list, scale: GradScale) -> list:
    """Each step with its tensors' edge styles added (``"s"`` beside ``"v"`` and ``"g"``)."""
    for step in steps:
        for entry in step["t"].values():
            entry["s"] = edge_style(scale, entry.get("v"), entry.get("g"))
    return steps


def scale_data(scale: GradScale) -> dict:
    """The legend's gradient scale: thresholds and one colour per power of ten."""
    lo, hi = math.log10(scale.vanishing), math.log10(scale.exploding)
    stops = [(10.0 ** k, scale.color(10.0 ** k))
             for k in range(int(math.ceil(lo)), int(math.floor(hi)) + 1)]
    return {"vanishing": scale.vanishing, "exploding": scale.exploding, "stops": stops,
            "nan": NAN_COLOR, "explodingColor": EXPLODING_COLOR,
            "vanishingColor": VANISHING_COLOR}


# ==== the page ====================================================================================

def _json(data) -> str:
    """JSON safe inside a <script> element (no ``</``, no HTML comment openers)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _svg_body(svg: str) -> str:
    """The ``<svg>`` element alone (no XML prolog, doctype or comments before it)."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def build_page(graph, svg: str, steps: list, *, scale: GradScale | None = None,
               title: str | None = None, curve: list | None = None, note: str = "") -> str:
    """The page's HTML text (see the module docstring).

    ``steps``: ``[{"label", "epoch", "record", "t": {tensor: {"v": summary, "g": summary or
    None}}, "o": {param: {slot: summary}}}]``; ``curve``: the epoch records of a training run
    (loss and metrics), drawn under the slider.
    """
    scale = scale or GradScale()
    data = graph_data(graph)
    data.update(steps=styled_steps(steps, scale), curve=curve or [], note=note,
                scale=scale_data(scale), title=title or graph.name)
    parts = {"POLICY": POLICY, "TITLE": html.escape(title or graph.name),
             "CSS": _asset("page.css"), "SVG": _svg_body(svg), "DATA": _json(data),
             "JS": _asset("page.js")}
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: parts[m.group(1)], _asset("page.html"))
