"""Drawing a graph: DOT text, and pictures (SVG, PNG, PDF) from whichever Graphviz is installed.

``draw(source)`` draws the structure: op nodes (op, name, key attributes) as blue boxes,
inputs as green ellipses, params as orange cylinders, constants as grey notes, outputs and the
loss as double-bordered sinks, and layer groups (``linear``, ``conv``) as clusters.  Every edge
is a tensor, labelled with its name and shape.

``draw(source, values=True, grads=True)`` first runs one forward (and backward) pass on the
first training batch (or on given feeds and params) and writes each tensor's value and
d(loss)/d(tensor) on its edge: small tensors in full, large ones as statistics.  The edge's
colour and width show the gradient's size: the largest |gradient| of the tensor, on a log
scale from grey (tiny) over blue (about 1) to red (huge).  Vanishing gradients are dashed
grey, exploding ones thick red, and NaN or infinity bold magenta with "NaN" in the label.

The numbers come from :class:`~minigraph.model.Model`; this module only arranges and formats.
The DOT text is always available (``picture.dot``).  Pictures come from the system ``dot``
when there is one, else from the ``graphviz-pure`` executable that ``pip install minigraph``
brings; with neither, :meth:`GraphPicture.save` writes the ``.dot`` file and says how to get
a renderer.
"""
from __future__ import annotations

import html
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import MinigraphError
from .report import format_lines, format_number

FORMATS = ("svg", "png", "pdf", "dot")

# ==== styles ======================================================================================

FONT = "Helvetica"
FIT_SIZE = "20,11.25"  # inches: 1440 x 810 pt, a 1920 x 1080 screen at 96 dpi
MONO = "Courier"

NODE_STYLES = {
    "op": {"shape": "box", "style": "rounded,filled", "fillcolor": "#dce8f8",
           "color": "#3d6db5"},
    "input": {"shape": "ellipse", "style": "filled", "fillcolor": "#d8f0d2", "color": "#4c9a3f"},
    "param": {"shape": "cylinder", "style": "filled", "fillcolor": "#fde3c0",
              "color": "#c77c1e"},
    "constant": {"shape": "note", "style": "filled", "fillcolor": "#eeeeee",
                 "color": "#8a8a8a"},
    "output": {"shape": "ellipse", "style": "filled", "fillcolor": "#ffffff",
               "color": "#555555", "peripheries": "2"},
    "loss": {"shape": "doubleoctagon", "style": "filled", "fillcolor": "#f9d5d3",
             "color": "#b03a2e"},
}

PLAIN_EDGE = "#555555"  # edges without a gradient
VANISHING_COLOR = "#a8a8a8"
EXPLODING_COLOR = "#d62728"
NAN_COLOR = "#d400d4"
# Colour stops along log10 |grad|, from the vanishing threshold (0) to the exploding one (1).
# With the default thresholds 1e-7 and 1e3, a gradient of about 1 sits at 0.7: deep blue.
COLOR_STOPS = [(0.0, "#c0c0c0"), (0.4, "#6f9bd8"), (0.7, "#1f4fbf"), (0.85, "#8a3ab9"),
               (1.0, EXPLODING_COLOR)]


# ==== gradient encoding ===========================================================================

def _mix(c1: str, c2: str, t: float) -> str:
    a = [int(c1[i:i + 2], 16) for i in (1, 3, 5)]
    b = [int(c2[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b))


@dataclass(frozen=True)
class GradScale:
    """How a gradient's size becomes an edge style.

    The size of a tensor's gradient is its largest absolute entry.  Below ``vanishing`` it is
    "vanishing" (dashed grey); above ``exploding`` it is "exploding" (thick red); NaN or
    infinity anywhere is "NaN" (bold magenta).  In between, colour and width follow
    log10 |grad| along :data:`COLOR_STOPS`.
    """

    vanishing: float = 1e-7
    exploding: float = 1e3

    def __post_init__(self):
        if not 0 < self.vanishing < self.exploding:
            raise MinigraphError(f"gradient thresholds must satisfy 0 < vanishing < exploding, "
                                 f"got vanishing={self.vanishing}, exploding={self.exploding}")

    def position(self, size: float) -> float:
        """Where ``size`` lies between the thresholds on a log scale, clipped to [0, 1]."""
        lo, hi = math.log10(self.vanishing), math.log10(self.exploding)
        return min(1.0, max(0.0, (math.log10(size) - lo) / (hi - lo))) if size > 0 else 0.0

    def color(self, size: float) -> str:
        t = self.position(size)
        for (t0, c0), (t1, c1) in zip(COLOR_STOPS, COLOR_STOPS[1:]):
            if t <= t1:
                return _mix(c0, c1, (t - t0) / (t1 - t0))
        return COLOR_STOPS[-1][1]

    def classify(self, grad, value=None) -> str:
        """'nan', 'zero', 'vanishing', 'exploding', 'normal', or 'none' (no gradient)."""
        for a in (grad, value):
            if a is not None and np.asarray(a).dtype.kind == "f" and \
                    not np.isfinite(a).all():
                return "nan"
        if grad is None:
            return "none"
        size = float(np.abs(grad).max()) if np.size(grad) else 0.0
        if size == 0:
            return "zero"
        if size < self.vanishing:
            return "vanishing"
        if size > self.exploding:
            return "exploding"
        return "normal"

    def edge_style(self, grad, value=None) -> tuple:
        """``(kind, attrs)``: the class of the gradient and the DOT edge attributes."""
        kind = self.classify(grad, value)
        if kind == "nan":
            return kind, {"color": NAN_COLOR, "penwidth": "4", "style": "bold"}
        if kind == "none":
            return kind, {"color": PLAIN_EDGE, "penwidth": "1"}
        if kind in ("zero", "vanishing"):
            return kind, {"color": VANISHING_COLOR, "penwidth": "1", "style": "dashed"}
        if kind == "exploding":
            return kind, {"color": EXPLODING_COLOR, "penwidth": "6"}
        size = float(np.abs(grad).max())
        return kind, {"color": self.color(size),
                      "penwidth": f"{1 + 3.5 * self.position(size):.2f}"}


# ==== what one pass gave ==========================================================================

@dataclass
class Snapshot:
    """Values and gradients of one pass, by tensor name (host NumPy arrays)."""

    values: dict = field(default_factory=dict)
    grads: dict = field(default_factory=dict)
    has_grads: bool = False
    note: str = ""  # e.g. "first training batch"

    @classmethod
    def of(cls, model, note: str = "") -> "Snapshot":
        """Read every tensor's value (and gradient, if backward ran) from a Model."""
        last = model.last
        values = {name: model.value(name) for name in model.graph.tensors
                  if name in last.values or name in model.params}
        has_grads = bool(last.grads)
        grads = {name: model.grad(name) for name in model.graph.tensors} if has_grads else {}
        return cls(values, {k: g for k, g in grads.items() if g is not None}, has_grads, note)


def run_pass(source, *, grads: bool = True, params=None, feeds=None, data_dir=None,
             backend=None):
    """A Model after one forward pass (and a backward pass when ``grads`` and there is a loss).

    ``params``: a dict by name or a path to a checkpoint ``.npz``; ``feeds``: a dict by input
    name (default: the first training batch, read with ``data_dir`` for data sets).
    """
    from .checkpoint import load_checkpoint
    from .model import Model, first_batch, load_graph

    if isinstance(source, Model):
        graph = source.graph
        params = dict(source.params) if params is None else params
    else:
        graph = load_graph(source)
    if isinstance(params, (str, os.PathLike)):
        params = load_checkpoint(params, params={
            name: tuple(int(d) for d in t.shape) for name, t in graph.params.items()}).params
    model = Model(graph, backend=backend, params=params)
    feeds = first_batch(graph, data_dir, model.seed) if feeds is None else feeds
    with np.errstate(all="ignore"):  # NaN and overflow are what the picture is there to show
        model.forward(feeds)
        if grads and graph.loss is not None:
            model.backward()
    return model


# ==== DOT =========================================================================================

def _esc(text) -> str:
    return html.escape(str(text), quote=False)


def _html(*rows) -> str:
    """An HTML-like label: a borderless table, one cell row per item."""
    body = "".join(rows)
    return (f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{body}'
            "</TABLE>>")


def _row_table(cells) -> str:
    """One legend row as its own table, so its cells do not share columns with other rows."""
    return ('<TR><TD><TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1" CELLPADDING="2"><TR>'
            + "".join(cells) + "</TR></TABLE></TD></TR>")


def _mono(lines, color=None) -> str:
    text = "".join(_esc(line) + '<BR ALIGN="LEFT"/>' for line in lines)
    color = f' COLOR="{color}"' if color else ""
    return f'<FONT FACE="{MONO}" POINT-SIZE="10"{color}>{text}</FONT>'


def _attr_text(op) -> str:
    """Attributes that differ from their defaults (the "key" ones), as ``k=v, ...``."""
    parts = []
    for key, spec in op.attrs.items():
        value = getattr(op, key, None)
        if spec.required or value != spec.default:
            if isinstance(value, (list, tuple)):
                value = "x".join(str(v) for v in value)
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def _wrap_shape(text: str, width: int = 14) -> list:
    """``(batch, 32, 28, 28)`` as ``(batch, 32,`` and ``28, 28)``: narrower edge labels."""
    if len(text) <= width:
        return [text]
    parts = text.split(", ")
    half = (len(parts) + 1) // 2
    return [", ".join(parts[:half]) + ",", ", ".join(parts[half:])]


def _shape_text(shape) -> str:
    from .ops.base import fmt_shape

    return fmt_shape(shape) if len(shape) else "scalar"


class _DotBuilder:
    """Builds the DOT source of one graph (and optionally one pass's numbers)."""

    def __init__(self, graph, snapshot: Snapshot | None, scale: GradScale, rankdir: str,
                 title: str | None, legend: bool, precision: int, max_elements: int,
                 fit: str | None = FIT_SIZE):
        import graphviz

        self.graph, self.snap, self.scale = graph, snapshot, scale
        self.precision, self.max_elements = precision, max_elements
        self.dot = graphviz.Digraph(graph.name or "model")
        self.dot.attr(rankdir=rankdir, fontname=FONT, newrank="true", nodesep="0.3",
                      ranksep="0.2", labelloc="t", labeljust="c", pad="0.2")
        if snapshot is None and fit:
            # Structure drawings are scaled down (never up) to fit a 1920x1080 screen; with
            # values the labels would get too small, so those keep their natural size.
            self.dot.attr(size=fit)
        self.dot.attr("node", fontname=FONT, fontsize="12", margin="0.12,0.06")
        self.dot.attr("edge", fontname=FONT, fontsize="9", arrowsize="0.7")
        self.ids: dict = {}
        self.kinds_used: set = set()
        self.title = title
        self.legend = legend
        self.compact = snapshot is None  # params beside their op; with values labels collide
        self.flipped: set = set()

    # -- nodes ------------------------------------------------------------------------------
    def _node(self, where, node_id: str, kind: str, label: str, tooltip: str = "", **extra):
        self.kinds_used.add(kind)
        where.node(node_id, label, tooltip=tooltip or None, **NODE_STYLES[kind], **extra)

    def _same_rank(self, where, node, home):
        """Draw the params a node reads beside it (same rank) rather than a column before."""
        params = [t for t in node.inputs if self.graph.tensors[t].kind == "param"
                  and home.get(t) == node.group and self.first_reader[t] is node]
        if params and self.compact:
            with where.subgraph() as same:
                same.attr(rank="same")
                for t in [node.name] + params:
                    same.node(self.ids[t])
            # Flat edges put their tails on one side; turning the second one round (drawn
            # with dir=back) puts W on one side of the op and b on the other.
            self.flipped.update((t, node.name) for t in params[1:])

    def _source_label(self, name: str, kind: str) -> str:
        shape = self.graph.tensors[name].shape
        rows = [f"<TR><TD><B>{_esc(name)}</B></TD></TR>"]
        if kind == "constant":
            value = self.graph.spec.constants[name].value
            lines = format_lines(np.asarray(value), self.precision, self.max_elements)
            rows.append(f"<TR><TD>{_mono(lines)}</TD></TR>")
        else:
            rows.append(f'<TR><TD><FONT POINT-SIZE="9">{_esc(_shape_text(shape))}'
                        "</FONT></TD></TR>")
        return _html(*rows)

    def _op_label(self, node) -> str:
        local = node.name
        if node.group and local.startswith(node.group + "."):
            local = local[len(node.group) + 1:]
        rows = [f"<TR><TD><B>{_esc(node.op_name)}</B></TD></TR>"]
        if local != node.op_name:
            rows.append(f'<TR><TD><FONT POINT-SIZE="10">{_esc(local)}</FONT></TD></TR>')
        attrs = _attr_text(node.op)
        if attrs:
            rows.append(f'<TR><TD><FONT POINT-SIZE="9" COLOR="#444444">{_esc(attrs)}'
                        "</FONT></TD></TR>")
        return _html(*rows)

    def _group_label(self, group: str) -> str:
        spec = self.graph.groups()[group][0].spec
        attrs = [f"{k}={v}" for k, v in (spec.attrs or {}).items()] if spec else []
        lines, line = [], ""
        for a in attrs:  # wrap the attributes so the label does not widen the cluster
            if line and len(line) + len(a) > 22:
                lines.append(line + ",")
                line = ""
            line = f"{line}, {a}" if line else a
        if line:
            lines.append(line)
        rows = [f'<TR><TD ALIGN="LEFT"><B>{_esc(group)}</B>  '
                f'<FONT POINT-SIZE="10">{_esc(spec.op if spec else "")}</FONT></TD></TR>']
        rows += [f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="9" COLOR="#444444">{_esc(t)}</FONT>'
                 "</TD></TR>" for t in lines]
        return _html(*rows)

    # -- edges ------------------------------------------------------------------------------
    def _edge_label(self, name: str, full: bool) -> tuple:
        """``(label, attrs)`` for an edge carrying tensor ``name``."""
        shape = _shape_text(self.graph.tensors[name].shape)
        snap = self.snap
        if snap is None:
            return _html(f"<TR><TD>{_esc(name)}</TD></TR>", *[
                f'<TR><TD><FONT COLOR="#666666">{_esc(part)}</FONT></TD></TR>'
                for part in _wrap_shape(shape)]), {"color": PLAIN_EDGE}
        value = snap.values.get(name)
        grad = snap.grads.get(name)
        kind, attrs = self.scale.edge_style(grad if snap.has_grads else None, value)
        if value is not None:
            shape = _shape_text(np.shape(value))
        tag = {"nan": ("NaN", NAN_COLOR), "vanishing": ("vanishing", "#777777"),
               "zero": ("zero gradient", "#777777"),
               "exploding": ("exploding", EXPLODING_COLOR)}.get(kind)
        head = f"<B>{_esc(name)}</B> <FONT COLOR=\"#666666\">{_esc(shape)}</FONT>"
        if tag:
            head += f' <FONT COLOR="{tag[1]}"><B>{tag[0]}</B></FONT>'
        rows = [f'<TR><TD ALIGN="LEFT" COLSPAN="2">{head}</TD></TR>']
        if not full:
            return _html(*rows), attrs
        if value is not None:
            lines = format_lines(value, self.precision, self.max_elements)
            rows.append(f'<TR><TD ALIGN="RIGHT" VALIGN="TOP">value</TD>'
                        f'<TD ALIGN="LEFT">{_mono(lines)}</TD></TR>')
        if snap.has_grads and grad is not None:
            lines = format_lines(grad, self.precision, self.max_elements)
            color = "#777777" if kind in ("zero", "vanishing") else attrs["color"]
            if kind == "normal":  # keep light colours readable as text
                color = _mix(color, "#000000", 0.25)
            rows.append(f'<TR><TD ALIGN="RIGHT" VALIGN="TOP"><FONT COLOR="{color}">'
                        f"∂{_esc(self.graph.loss)}/∂{_esc(name)}</FONT></TD>"
                        f'<TD ALIGN="LEFT">{_mono(lines, color)}</TD></TR>')
        return _html(*rows), attrs

    def _edge(self, tail: str, head: str, tensor: str, full: bool, reader=None):
        label, attrs = self._edge_label(tensor, full)
        if self.snap is None and self.graph.tensors[tensor].kind != "node":
            label = None  # the source's node already shows its name and shape
        if (tensor, reader) in self.flipped:
            tail, head, attrs = head, tail, {**attrs, "dir": "back"}
        self.dot.edge(tail, head, label=label, tooltip=tensor, **attrs)

    # -- the whole graph --------------------------------------------------------------------
    def build(self) -> str:
        g = self.graph
        groups = g.groups()
        consumers = {name: [] for name in g.tensors}
        for node in g.nodes:
            for t in node.inputs:
                consumers[t].append(node)
        # A param whose every reader is in one layer group is drawn inside that cluster,
        # beside its op.  With values, the labels of such flat edges would collide, and a
        # param in the cluster's first column pushes the edge label coming into the cluster
        # round it (the layers then climb like stairs), so params stay outside.
        home = {}
        for name, t in g.tensors.items():
            if t.kind == "param" and self.compact:
                readers = {n.group for n in consumers[name]}
                home[name] = readers.pop() if len(readers) == 1 else None

        self.first_reader = {t: readers[0] for t, readers in consumers.items() if readers}
        sources = [n for n, t in g.tensors.items() if t.kind != "node" and consumers[n]]
        for i, name in enumerate(sources):
            self.ids[name] = f"s{i}"
        for i, node in enumerate(g.nodes):
            self.ids[node.name] = f"n{i}"

        for name in sources:
            if home.get(name) is None:
                kind = g.tensors[name].kind
                self._node(self.dot, self.ids[name], kind, self._source_label(name, kind),
                           f"{kind} {name}")
        drawn_groups = set()
        for node in g.nodes:
            if node.group is None:
                self._node(self.dot, self.ids[node.name], "op", self._op_label(node),
                           f"{node.name}: {node.op_name}", group="ops")
                self._same_rank(self.dot, node, home)
                continue
            if node.group in drawn_groups:
                continue
            drawn_groups.add(node.group)
            with self.dot.subgraph(name=f"cluster_{len(drawn_groups)}") as c:
                c.attr(label=self._group_label(node.group), style="rounded,filled",
                       fillcolor="#f4f6fb", color="#9aa9c7", fontname=FONT, fontsize="11",
                       labeljust="l")
                for name in sources:
                    if home.get(name) == node.group:
                        kind = g.tensors[name].kind
                        self._node(c, self.ids[name], kind, self._source_label(name, kind),
                                   f"{kind} {name}")
                for member in groups[node.group]:
                    self._node(c, self.ids[member.name], "op", self._op_label(member),
                               f"{member.name}: {member.op_name}", group="ops")
                    self._same_rank(c, member, home)

        for name in g.tensors:
            producer = g.tensors[name].producer
            tail = self.ids.get(producer if producer is not None else name)
            if tail is None:
                continue
            for k, node in enumerate(consumers[name]):
                self._edge(tail, self.ids[node.name], name, full=(k == 0), reader=node.name)
            # Outputs, the loss and unread results end in a sink node that shows them.
            if producer is not None and (not consumers[name] or name in g.outputs
                                         or name == g.loss):
                if consumers[name] and name != g.loss and name in g.outputs:
                    continue  # already labelled on the edge to its reader
                kind = "loss" if name == g.loss else "output"
                word = kind if name == g.loss or name in g.outputs else "unread"
                sink = f"o{len(self.ids)}"
                self.ids[f"sink:{name}"] = sink
                self._node(self.dot, sink, kind,
                           _html(f'<TR><TD><FONT POINT-SIZE="9">{word}</FONT></TD></TR>',
                                 f"<TR><TD><B>{_esc(name)}</B></TD></TR>"), f"{kind} {name}")
                self._edge(tail, sink, name, full=not consumers[name])
        self.dot.attr(label=self._legend_label())
        return self.dot.source

    # -- title and legend -------------------------------------------------------------------
    def _legend_label(self) -> str:
        g, snap = self.graph, self.snap
        title = self.title
        if title is None:
            title = f"<B>{_esc(g.name)}</B>"
            if snap is not None:
                what = "values and gradients" if snap.has_grads else "values"
                title += f"  —  {what}" + (f" ({_esc(snap.note)})" if snap.note else "")
                if not snap.has_grads and g.loss is None:
                    title += " (no loss, so no gradients)"
        else:
            title = _esc(title)
        rows = [f'<TR><TD><FONT POINT-SIZE="15">{title}</FONT></TD></TR>']
        if not self.legend:
            return _html(*rows)
        small = '<FONT POINT-SIZE="10">{}</FONT>'
        cells = [f"<TD>{small.format('nodes:')}</TD>"]
        for kind in ("input", "param", "constant", "op", "output", "loss"):
            if kind in self.kinds_used:
                style = NODE_STYLES[kind]
                cells.append(f'<TD BGCOLOR="{style["fillcolor"]}" BORDER="1" '
                             f'COLOR="{style["color"]}">{small.format(kind)}</TD>')
        edges = "edges are tensors: name (shape)" + (
            f", value and ∂{_esc(g.loss)}/∂tensor" if snap is not None and snap.has_grads
            else ", value" if snap is not None else "")
        rows.append(f'<TR><TD><FONT POINT-SIZE="10" COLOR="#555555">{edges}</FONT></TD></TR>')
        if snap is not None and snap.has_grads:
            s = self.scale
            cells.append(f"<TD>{small.format(f'    edges by largest |∂{_esc(g.loss)}/∂t|:')}"
                         "</TD>")
            lo, hi = math.log10(s.vanishing), math.log10(s.exploding)
            for k in range(int(math.ceil(lo)), int(math.floor(hi)) + 1):
                size = 10.0 ** k
                cells.append(f'<TD BGCOLOR="{s.color(size)}"><FONT POINT-SIZE="8" '
                             f'COLOR="#ffffff">{format_number(size, 1)}</FONT></TD>')
            rows.append(_row_table(cells))
            rows.append(
                "<TR><TD>" + small.format(
                    f'<FONT COLOR="#777777">dashed grey: zero or vanishing (&lt; '
                    f"{format_number(s.vanishing, 2)})</FONT>     "
                    f'<FONT COLOR="{EXPLODING_COLOR}"><B>thick red: exploding (&gt; '
                    f"{format_number(s.exploding, 2)})</B></FONT>     "
                    f'<FONT COLOR="{NAN_COLOR}"><B>bold magenta: NaN or inf</B></FONT>')
                + "</TD></TR>")
        else:
            rows.append(_row_table(cells))
        return _html(*rows)


def build_dot(graph, snapshot: Snapshot | None = None, *, rankdir: str = "LR",
              scale: GradScale | None = None, title: str | None = None, legend: bool = True,
              precision: int = 4, max_elements: int = 16, fit: str | None = FIT_SIZE) -> str:
    """The DOT source of ``graph``, with ``snapshot``'s values and gradients if given.

    ``fit`` ("W,H" in inches) scales structure drawings down to fit a screen (None: never).
    """
    rankdir = rankdir.upper()
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise MinigraphError(f"rankdir must be LR or TB, got {rankdir!r}")
    builder = _DotBuilder(graph, snapshot, scale or GradScale(), rankdir, title, legend,
                          precision, max_elements, fit)
    return builder.build()


# ==== renderers ===================================================================================

def find_renderer() -> list | None:
    """The command that turns DOT into pictures: system ``dot``, else ``graphviz-pure``."""
    dot = shutil.which("dot")
    if dot:
        return [dot]
    for name in ("graphviz-pure", "graphviz-pure.exe"):
        beside = Path(sys.executable).parent / name
        if beside.is_file() and os.access(beside, os.X_OK):
            return [str(beside)]
    pure = shutil.which("graphviz-pure")
    return [pure] if pure else None


NO_RENDERER = ("no Graphviz renderer found: wrote {dot}; install one with "
               "`pip install graphviz-pure` or your system's graphviz package")


def _is_pure(command: list) -> bool:
    return "graphviz-pure" in Path(command[0]).name


def pipe(source: str, fmt: str, renderer: list | None = None, dpi: int | None = None) -> bytes:
    """Run the renderer on DOT ``source``; returns the picture's bytes."""
    renderer = renderer or find_renderer()
    if renderer is None:
        raise MinigraphError(NO_RENDERER.format(dot="nothing (no output path)"))
    if fmt == "pdf" and _is_pure(renderer):
        return _jpeg_pdf(source, renderer)
    args = renderer + [f"-T{fmt}"] + ([f"-Gdpi={dpi}"] if dpi else [])
    try:
        done = subprocess.run(args, input=source.encode("utf-8"), capture_output=True,
                              timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MinigraphError(f"{Path(renderer[0]).name} failed: {exc}") from None
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise MinigraphError(f"{Path(renderer[0]).name} -T{fmt} failed: "
                             f"{message[-1] if message else 'no output'}")
    return done.stdout


def _jpeg_pdf(source: str, renderer: list, dpi: int = 150) -> bytes:
    """graphviz-pure writes no PDF: wrap its JPEG in a one-page PDF (raster, ``dpi``)."""
    jpeg = pipe(source, "jpeg", renderer, dpi=dpi)
    width, height = _jpeg_size(jpeg)
    w, h = width * 72 / dpi, height * 72 / dpi
    content = f"q {w:.2f} 0 0 {h:.2f} 0 0 cm /Im0 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w:.2f} {h:.2f}] "
         "/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>").encode(),
        (f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} "
         f"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode "
         f"/Length {len(jpeg)} >>\nstream\n").encode() + jpeg + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n"
            "%%EOF\n").encode()
    return bytes(out)


def _jpeg_size(data: bytes) -> tuple:
    """(width, height) from a JPEG's start-of-frame marker."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            return width, height
        i += 2 + length
    raise MinigraphError("could not read the size of graphviz-pure's JPEG output")


# ==== the picture =================================================================================

class GraphPicture:
    """A drawn graph: ``.dot`` source, ``.save(path)``, and inline display in Jupyter."""

    def __init__(self, dot: str, name: str = "model"):
        self.dot = dot
        self.name = name
        self._svg: str | None = None

    def __repr__(self) -> str:
        return f"<GraphPicture of '{self.name}': {self.dot.count('->')} edges>"

    @property
    def source(self) -> str:
        return self.dot

    def pipe(self, fmt: str = "svg") -> bytes:
        """The picture as bytes in ``fmt`` (svg, png, pdf) or the DOT text (dot)."""
        if fmt == "dot":
            return self.dot.encode("utf-8")
        if fmt not in FORMATS:
            raise MinigraphError(f"unknown picture format {fmt!r}; use one of "
                                 f"{', '.join(FORMATS)}")
        return pipe(self.dot, fmt)

    def svg(self) -> str:
        if self._svg is None:
            self._svg = self.pipe("svg").decode("utf-8")
        return self._svg

    def save(self, path, format: str | None = None) -> Path:  # noqa: A002 - the usual name
        """Write the picture; the format comes from ``format`` or the file's suffix.

        With no renderer installed, writes the DOT text next to ``path`` (``.dot``) and
        raises a :class:`MinigraphError` that says how to install one.
        """
        path = Path(path)
        fmt = (format or path.suffix.lstrip(".") or "svg").lower()
        if fmt == "gv":
            fmt = "dot"
        if fmt not in FORMATS:
            raise MinigraphError(f"cannot tell the picture format from '{path}'; use a "
                                 f"suffix or format among {', '.join(FORMATS)}")
        if not path.parent.is_dir():
            raise MinigraphError(f"cannot write {path}: folder {path.parent} does not exist")
        if fmt == "dot":
            path.write_text(self.dot, encoding="utf-8")
            return path
        if find_renderer() is None:
            dot_path = path.with_suffix(".dot")
            dot_path.write_text(self.dot, encoding="utf-8")
            raise MinigraphError(NO_RENDERER.format(dot=dot_path))
        path.write_bytes(self.pipe(fmt))
        return path

    # -- Jupyter ----------------------------------------------------------------------------
    def _repr_svg_(self):
        try:
            return self.svg()
        except MinigraphError:
            return None

    def _repr_mimebundle_(self, include=None, exclude=None):
        try:
            return {"image/svg+xml": self.svg(), "text/plain": repr(self)}
        except MinigraphError as exc:
            return {"text/plain": f"{exc}\n\n{self.dot}"}


def draw(source, *, values: bool = False, grads: bool = False, params=None, feeds=None,
         data_dir=None, rankdir: str = "LR", vanishing: float = 1e-7, exploding: float = 1e3,
         legend: bool = True, title: str | None = None, fit: str | None = FIT_SIZE,
         backend=None) -> GraphPicture:
    """Draw a model (path, dict, Graph or Model).

    Without ``values``/``grads`` only the structure is drawn (no data needed).  ``grads``
    implies ``values``: one forward and backward pass on the first training batch (or
    ``feeds``), with ``params`` (a dict or a checkpoint path) instead of fresh ones if given.
    A Model that has already run is drawn with its own last pass.
    """
    from .model import Model, load_graph

    scale = GradScale(vanishing, exploding)
    snapshot = None
    if isinstance(source, Model) and source.last is not None and params is None \
            and feeds is None:
        graph = source.graph
        snapshot = Snapshot.of(source, "last pass")
    elif values or grads:
        model = run_pass(source, grads=grads, params=params, feeds=feeds, data_dir=data_dir,
                         backend=backend)
        graph = model.graph
        note = "given data" if feeds is not None else (
            "first training batch" if graph.inputs else "")
        if isinstance(params, (str, os.PathLike)):
            note += (" with " if note else "") + f"params from {Path(params).name}"
        snapshot = Snapshot.of(model, note)
    else:
        graph = source.graph if isinstance(source, Model) else load_graph(source)
    dot = build_dot(graph, snapshot, rankdir=rankdir, scale=scale, title=title, legend=legend,
                    fit=fit)
    return GraphPicture(dot, graph.name)
