"""A graph as DOT text: nodes, clusters, edges with their tensors, a title and a legend.

``build_dot(graph)`` draws the structure: op nodes (op, name, key attributes) as blue boxes,
inputs as green ellipses, params as orange cylinders, constants as grey notes, outputs and the
loss as double-bordered sinks, and layer groups (``linear``, ``conv``) as clusters.  Every edge
is a tensor, labelled with its name and shape.

``build_dot(graph, snapshot)`` also writes each tensor's value and d(loss)/d(tensor) from one
pass (a :class:`Snapshot`) on its edge: small tensors in full, large ones as statistics.  The
edge's colour and width show the gradient's size (:class:`GradScale`): the largest |gradient|
of the tensor, on a log scale from grey (tiny) over blue (about 1) to red (large).  Below the
``tiny`` bound (1e-7) gradients are dashed grey, above the ``large`` bound (1e3) thick red, and
NaN or infinity bold magenta with "NaN" in the label.  The bounds are plain absolute bands,
named as such ("tiny", "large"): whether a gradient is too large depends on the loss's and the
inputs' scale (a regression on inputs of 70-100 starts with gradients of 1e4 and trains well),
which the picture leaves to the reader rather than calling it "exploding".

By default gradients are drawn for params and for the tensors the nodes compute: what the
chain rule carries back to what is learned.  Data inputs and constants are not learned; their
gradients (which the pass computes all the same) are drawn only with ``all_grads``.

This module only arranges and formats: the numbers come from the caller
(:func:`minigraph.api.draw` runs the pass), and :mod:`~minigraph.render.picture` turns the
DOT text into pictures.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import MinigraphError
from ..text import fmt_shape, format_lines, format_number

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
# The word an edge label shows after the tensor's shape, by class of gradient: the absolute
# bands are named plainly ("tiny", "large"), not "vanishing"/"exploding" (see the module doc).
GRAD_TAGS = {"nan": ("NaN", NAN_COLOR), "vanishing": ("tiny gradient", "#777777"),
             "zero": ("zero gradient", "#777777"), "exploding": ("large gradient", EXPLODING_COLOR)}


# ==== gradient encoding ===========================================================================

def _mix(c1: str, c2: str, t: float) -> str:
    a = [int(c1[i:i + 2], 16) for i in (1, 3, 5)]
    b = [int(c2[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b))


def _color_at(t: float) -> str:
    """The colour at ``t`` (0 to 1) along :data:`COLOR_STOPS`."""
    for (t0, c0), (t1, c1) in zip(COLOR_STOPS, COLOR_STOPS[1:]):
        if t <= t1:
            return _mix(c0, c1, (t - t0) / (t1 - t0))
    return COLOR_STOPS[-1][1]


@dataclass(frozen=True)
class GradScale:
    """How a gradient's size becomes an edge style.

    The size of a tensor's gradient is its largest absolute entry.  Below ``vanishing`` it is
    drawn as "tiny" (dashed grey); above ``exploding`` as "large" (thick red); NaN or
    infinity anywhere is "NaN" (bold magenta).  (The class names stay ``vanishing`` and
    ``exploding``; the picture names the bands plainly.)  In between, colour and width follow
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
        return _color_at(self.position(size))

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
    """Values and gradients of one pass, by tensor name (host NumPy arrays).

    Plain data: :func:`minigraph.api.snapshot` reads one from a Model that has run.
    """

    values: dict = field(default_factory=dict)
    grads: dict = field(default_factory=dict)
    has_grads: bool = False
    note: str = ""  # e.g. "first training batch"
    hidden_grads: bool = False  # gradients of data inputs and constants left out


# ==== HTML-like labels ============================================================================

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
    return fmt_shape(shape) if len(shape) else "scalar"


def op_label(node) -> str:
    """An op node: its op, its name within its layer (when that differs), key attributes."""
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


def group_label(graph, group: str) -> str:
    """A layer cluster: its name, its layer op and its attributes, wrapped to stay narrow."""
    spec = graph.groups()[group][0].spec
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


def sink_label(word: str, name: str) -> str:
    """The node an output, the loss or an unread result ends in."""
    return _html(f'<TR><TD><FONT POINT-SIZE="9">{word}</FONT></TD></TR>',
                 f"<TR><TD><B>{_esc(name)}</B></TD></TR>")


@dataclass
class Numbers:
    """How many digits, and up to how many entries before statistics, a label shows.

    Class labels (integers, or whole numbers among a few values fed as data) are not
    summarised as a mean: a large one shows its first entries and how many of each class.
    """

    precision: int = 4
    max_elements: int = 16

    def lines(self, a, data: bool = False) -> list:
        a = np.asarray(a)
        if a.size > self.max_elements and _looks_like_classes(a, data):
            return class_lines(a)
        return format_lines(a, self.precision, self.max_elements)


def _looks_like_classes(a, data: bool) -> bool:
    """Integers, or (for data inputs) whole numbers with at most 20 distinct values."""
    if a.dtype.kind in "iub":
        return True
    if not data or a.dtype.kind != "f" or not np.isfinite(a).all():
        return False
    return bool((a == np.round(a)).all()) and len(np.unique(a)) <= 20


def class_lines(a, first: int = 10, width: int = 44) -> list:
    """A large tensor of class labels: its first entries and the count of each class."""
    flat = np.ravel(a)
    shown = " ".join(format_number(x, 4) for x in flat[:first].tolist())
    lines = [f"first {shown}" + (" ..." if flat.size > first else "")]
    values, counts = np.unique(flat, return_counts=True)
    if len(values) > 20:
        return lines + [f"{len(values)} distinct, min {format_number(values[0], 4)}  "
                        f"max {format_number(values[-1], 4)}"]
    line = "counts"
    for v, c in zip(values.tolist(), counts.tolist()):
        cell = f" {format_number(v, 4)}:{c}"
        if len(line) + len(cell) > width:
            lines.append(line)
            line = "      "
        line += cell
    return lines + [line]


def _number_rows(graph, name: str, snap: Snapshot, numbers: Numbers, kind: str,
                 attrs: dict) -> list:
    """Two-column rows: the tensor's value, and its gradient when drawn."""
    value, grad = snap.values.get(name), snap.grads.get(name)
    rows = []
    if value is not None:
        data = graph.tensors[name].kind == "input"
        rows.append(f'<TR><TD ALIGN="RIGHT" VALIGN="TOP"><FONT POINT-SIZE="9">value</FONT>'
                    f'</TD><TD ALIGN="LEFT">{_mono(numbers.lines(value, data))}</TD></TR>')
    if snap.has_grads and grad is not None:
        color = "#777777" if kind in ("zero", "vanishing") else attrs["color"]
        if kind == "normal":  # keep light colours readable as text
            color = _mix(color, "#000000", 0.25)
        rows.append(f'<TR><TD ALIGN="RIGHT" VALIGN="TOP"><FONT POINT-SIZE="9" COLOR="{color}">'
                    f"∂{_esc(graph.loss)}/∂{_esc(name)}</FONT></TD>"
                    f'<TD ALIGN="LEFT">{_mono(numbers.lines(grad), color)}</TD></TR>')
    return rows


def _grad_tag(kind: str) -> str:
    """The word after a tensor's shape for a gradient that is NaN, zero, tiny or large."""
    if kind not in GRAD_TAGS:
        return ""
    word, color = GRAD_TAGS[kind]
    return f' <FONT COLOR="{color}"><B>{word}</B></FONT>'


def source_label(graph, name: str, kind: str, numbers: Numbers, snap: Snapshot | None = None,
                 scale: GradScale | None = None) -> str:
    """An input, param or constant: its name and shape (a constant: its value); with a
    snapshot also its value and gradient, which a node keeps clear of other edges."""
    rows = [f"<TR><TD><B>{_esc(name)}</B></TD></TR>"]
    if snap is not None and name in snap.values:
        grad = snap.grads.get(name) if snap.has_grads else None
        grad_kind, attrs = (scale or GradScale()).edge_style(grad, snap.values[name])
        shape = _shape_text(np.shape(snap.values[name]))
        rows[0] = (f'<TR><TD COLSPAN="2"><B>{_esc(name)}</B> <FONT POINT-SIZE="9">'
                   f"{_esc(shape)}</FONT>{_grad_tag(grad_kind)}</TD></TR>")
        return _html(*rows, *_number_rows(graph, name, snap, numbers, grad_kind, attrs))
    if kind == "constant":
        value = graph.spec.constants[name].value
        rows.append(f"<TR><TD>{_mono(numbers.lines(np.asarray(value)))}</TD></TR>")
    else:
        rows.append(f'<TR><TD><FONT POINT-SIZE="9">'
                    f"{_esc(_shape_text(graph.tensors[name].shape))}</FONT></TD></TR>")
    return _html(*rows)


def structure_edge_label(name: str, shape: str) -> str:
    """An edge without numbers: the tensor's name and (wrapped) shape."""
    return _padded([f"<TR><TD>{_esc(name)}</TD></TR>", *[
        f'<TR><TD><FONT COLOR="#666666">{_esc(part)}</FONT></TD></TR>'
        for part in _wrap_shape(shape)]], pad=2)


def _padded(rows, pad: int = 4) -> str:
    """An edge label with a margin, so that its lines keep clear of the edge's line."""
    inner = _html(*rows)[1:-1]
    return (f'<<TABLE BORDER="0" CELLBORDER="0" CELLPADDING="{pad}"><TR><TD>{inner}</TD></TR>'
            "</TABLE>>")


def value_edge_label(graph, name: str, snap: Snapshot, scale: GradScale, numbers: Numbers,
                     full: bool) -> tuple:
    """``(label, attrs)`` of an edge with one pass's numbers: name, shape, the gradient's
    class, and (when ``full``: on the first of the tensor's edges) its value and gradient."""
    value, grad = snap.values.get(name), snap.grads.get(name)
    kind, attrs = scale.edge_style(grad if snap.has_grads else None, value)
    shape = _shape_text(np.shape(value) if value is not None else graph.tensors[name].shape)
    head = f"<B>{_esc(name)}</B> <FONT COLOR=\"#666666\">{_esc(shape)}</FONT>{_grad_tag(kind)}"
    rows = [f'<TR><TD ALIGN="LEFT" COLSPAN="2">{head}</TD></TR>']
    if not full:
        return _padded(rows), attrs
    return _padded(rows + _number_rows(graph, name, snap, numbers, kind, attrs)), attrs


def tooltip_text(graph, name: str, snap: Snapshot | None, numbers: Numbers) -> str:
    """What hovering a tensor's node or edge shows: name, kind, shape, value, gradient."""
    tensor = graph.tensors[name]
    what = tensor.kind if tensor.kind != "node" else f"computed by {tensor.producer}"
    value = None if snap is None else snap.values.get(name)
    shape = _shape_text(np.shape(value) if value is not None else tensor.shape)
    lines = [f"{name} {shape}: {what}"]
    if value is not None:
        lines.append("value: " + "; ".join(numbers.lines(value, tensor.kind == "input")))
    if snap is not None and snap.has_grads:
        grad = snap.grads.get(name)
        lines.append(f"∂{graph.loss}/∂{name}: " + (
            "; ".join(numbers.lines(grad)) if grad is not None else "not drawn (not learned; "
            "render --all-grads shows it)" if tensor.kind in ("input", "constant")
            else "none"))
    return "\n".join(" ".join(line.split()) for line in lines)


# ==== title and legend ============================================================================

def title_text(graph, snap: Snapshot | None, title: str | None) -> str:
    """The given title, else the model's name and what the numbers on the edges are."""
    if title is not None:
        return _esc(title)
    text = f"<B>{_esc(graph.name)}</B>"
    if snap is not None:
        what = "values and gradients" if snap.has_grads else "values"
        text += f"  —  {what}" + (f" ({_esc(snap.note)})" if snap.note else "")
        if not snap.has_grads and graph.loss is None:
            text += " (no loss, so no gradients)"
    return text


_SMALL = '<FONT POINT-SIZE="10">{}</FONT>'


def _scale_cells(loss: str, scale: GradScale) -> list:
    """The gradient scale: one coloured cell per power of ten between the thresholds."""
    cells = [f"<TD>{_SMALL.format(f'    edges by largest |∂{_esc(loss)}/∂t|:')}</TD>"]
    lo, hi = math.log10(scale.vanishing), math.log10(scale.exploding)
    for k in range(int(math.ceil(lo)), int(math.floor(hi)) + 1):
        size = 10.0 ** k
        cells.append(f'<TD BGCOLOR="{scale.color(size)}"><FONT POINT-SIZE="8" '
                     f'COLOR="#ffffff">{format_number(size, 1)}</FONT></TD>')
    return cells


def _extremes_row(scale: GradScale) -> str:
    """How zero or tiny, large and NaN gradients are drawn (absolute bands, named plainly)."""
    return "<TR><TD>" + _SMALL.format(
        f'<FONT COLOR="#777777">dashed grey: zero or tiny (&lt; '
        f"{format_number(scale.vanishing, 2)})</FONT>     "
        f'<FONT COLOR="{EXPLODING_COLOR}"><B>thick red: large (&gt; '
        f"{format_number(scale.exploding, 2)})</B></FONT>     "
        f'<FONT COLOR="{NAN_COLOR}"><B>bold magenta: NaN or inf</B></FONT>') + "</TD></TR>"


def legend_label(graph, snap: Snapshot | None, scale: GradScale, kinds_used: set,
                 title: str | None, legend: bool = True) -> str:
    """The graph's label: the title, and the legend of node kinds and edge colours."""
    rows = [f'<TR><TD><FONT POINT-SIZE="15">{title_text(graph, snap, title)}</FONT></TD></TR>']
    if not legend:
        return _html(*rows)
    # One text cell (a coloured square per kind): a row of coloured cells would be stretched
    # across the whole width of a title that is wider than the row.
    swatches = "   ".join(f'<FONT COLOR="{NODE_STYLES[kind]["color"]}" POINT-SIZE="13">■</FONT>'
                          f" {kind}" for kind in ("input", "param", "constant", "op", "output",
                                                  "loss") if kind in kinds_used)
    cells = [f"<TD>{_SMALL.format('nodes:  ' + swatches)}</TD>"]
    grads = snap is not None and snap.has_grads
    edges = "edges are tensors: name (shape)" + (
        f", value and ∂{_esc(graph.loss)}/∂tensor" if grads
        else ", value" if snap is not None else "")
    if grads and snap.hidden_grads:
        edges += " (no gradient drawn for data inputs and constants: they are not learned)"
    rows.append(f'<TR><TD><FONT POINT-SIZE="10" COLOR="#555555">{edges}</FONT></TD></TR>')
    if grads:
        rows += [_row_table(cells + _scale_cells(graph.loss, scale)), _extremes_row(scale)]
    else:
        rows.append(_row_table(cells))
    return _html(*rows)


# ==== the drawing =================================================================================

def new_digraph(name: str, rankdir: str, fit: str | None):
    """An empty ``graphviz.Digraph`` with minigraph's fonts and spacing."""
    import graphviz

    dot = graphviz.Digraph(name or "model")
    dot.attr(rankdir=rankdir, fontname=FONT, newrank="true", nodesep="0.3",
             ranksep="0.2", labelloc="t", labeljust="c", pad="0.2")
    if fit:
        dot.attr(size=fit)
    dot.attr("node", fontname=FONT, fontsize="12", margin="0.12,0.06")
    dot.attr("edge", fontname=FONT, fontsize="9", arrowsize="0.7")
    return dot


@dataclass
class Layout:
    """Where things go: node ids, each tensor's readers, the cluster each param is drawn in.

    ``compact`` (structure drawings) draws a param whose every reader is in one layer group
    inside that cluster, beside its op (same rank; ``flipped`` edges are drawn turned round so
    W sits on one side of the op and b on the other).  With values, params stay outside:
    their nodes then hold value tables, and drawn beside their ops they widen every layer
    (circles --grads: 4,708 px against 4,380 left to right, 1,175 against 1,074 top to
    bottom).
    """

    graph: object
    compact: bool
    readers: dict = field(default_factory=dict)  # tensor -> the nodes that read it, in order
    home: dict = field(default_factory=dict)  # param -> its layer group (None: outside)
    sources: list = field(default_factory=list)  # inputs, params and constants that are read
    ids: dict = field(default_factory=dict)  # tensor or node name -> DOT node id
    flipped: set = field(default_factory=set)  # (param, reader) edges drawn with dir=back

    @classmethod
    def of(cls, graph, compact: bool) -> "Layout":
        out = cls(graph, compact, {name: [] for name in graph.tensors})
        for node in graph.nodes:
            for t in node.inputs:
                out.readers[t].append(node)
        for name, t in graph.tensors.items():
            if t.kind == "param" and compact:
                groups = {n.group for n in out.readers[name]}
                out.home[name] = groups.pop() if len(groups) == 1 else None
        out.sources = [n for n, t in graph.tensors.items()
                       if t.kind != "node" and out.readers[n]]
        out.ids = {name: f"s{i}" for i, name in enumerate(out.sources)}
        out.ids.update({node.name: f"n{i}" for i, node in enumerate(graph.nodes)})
        for node in graph.nodes:
            out.flipped.update((t, node.name) for t in out.beside(node)[1:])
        return out

    def beside(self, node) -> list:
        """The params drawn on the same rank as ``node`` (those it is the first to read)."""
        if not self.compact:
            return []
        return [t for t in node.inputs if self.graph.tensors[t].kind == "param"
                and self.home.get(t) == node.group and self.readers[t][0] is node]


class NodeDrawer:
    """Draws the nodes: sources, ops, and layer groups as clusters; counts the kinds used.

    With a snapshot a source's value and gradient are written in its node (not on its
    edge), where no other edge can run through them.
    """

    def __init__(self, dot, layout: Layout, numbers: Numbers, snap: Snapshot | None = None,
                 scale: GradScale | None = None, side_titles: bool = False):
        self.dot, self.layout, self.numbers = dot, layout, numbers
        self.snap, self.scale, self.side_titles = snap, scale, side_titles
        self.kinds_used: set = set()

    def node(self, where, node_id: str, kind: str, label: str, tooltip: str = "", **extra):
        self.kinds_used.add(kind)
        where.node(node_id, label, tooltip=tooltip or None, **NODE_STYLES[kind], **extra)

    def tooltip(self, tensor: str) -> str:
        return tooltip_text(self.layout.graph, tensor, self.snap, self.numbers)

    def draw(self):
        self._sources(self.dot, None)
        drawn_groups = set()
        for node in self.layout.graph.nodes:
            if node.group is None:
                self._op(self.dot, node)
            elif node.group not in drawn_groups:
                drawn_groups.add(node.group)
                self._cluster(node.group, len(drawn_groups))

    def _sources(self, where, group):
        """The inputs, params and constants drawn in ``group`` (None: outside clusters)."""
        graph, ids = self.layout.graph, self.layout.ids
        for name in self.layout.sources:
            if self.layout.home.get(name) == group:
                kind = graph.tensors[name].kind
                label = source_label(graph, name, kind, self.numbers, self.snap, self.scale)
                self.node(where, ids[name], kind, label, self.tooltip(name))

    def _op(self, where, node):
        ids = self.layout.ids
        tip = (f"{node.name}: {node.op_name} ({', '.join(node.inputs)} -> "
               f"{', '.join(node.outputs)})")
        self.node(where, ids[node.name], "op", op_label(node), tip, group="ops")
        params = self.layout.beside(node)
        if params:  # drawn beside the op (same rank) rather than a column before
            with where.subgraph() as same:
                same.attr(rank="same")
                for t in [node.name] + params:
                    same.node(ids[t])

    def _cluster(self, group: str, number: int):
        """A layer group as a cluster: its params and its ops.

        With ``side_titles`` (top-to-bottom drawings, where edges come in from above) the
        title is a node beside the first op rather than the cluster's top label, which the
        entering edges would cross.
        """
        graph = self.layout.graph
        members = graph.groups()[group]
        with self.dot.subgraph(name=f"cluster_{number}") as c:
            c.attr(style="rounded,filled", fillcolor="#f4f6fb", color="#9aa9c7",
                   fontname=FONT, fontsize="11", labeljust="l", tooltip=f"layer {group}")
            if not self.side_titles:
                c.attr(label=group_label(graph, group))
            self._sources(c, group)
            for member in members:
                self._op(c, member)
            if self.side_titles:
                title = f"t{number}"
                c.node(title, group_label(graph, group), shape="plain", fontsize="11",
                       tooltip=f"layer {group}")
                beside = self.layout.beside(members[0])  # W left of the op: title before it
                first = beside[0] if beside else members[0].name
                with c.subgraph() as same:
                    same.attr(rank="same")
                    same.edge(title, self.layout.ids[first], style="invis")


class EdgeDrawer:
    """Draws every tensor's edges, and the sinks that outputs, the loss and unread results
    end in; with a snapshot, each computed tensor's edge shows its value and gradient."""

    def __init__(self, nodes: NodeDrawer, snap: Snapshot | None, scale: GradScale):
        self.nodes, self.layout, self.snap, self.scale = nodes, nodes.layout, snap, scale

    def draw(self):
        for name in self.layout.graph.tensors:
            self._edges_of(name)

    def _edges_of(self, name: str):
        g, ids, readers = self.layout.graph, self.layout.ids, self.layout.readers[name]
        producer = g.tensors[name].producer
        tail = ids.get(producer if producer is not None else name)
        if tail is None:
            return
        for k, node in enumerate(readers):
            self._edge(tail, ids[node.name], name, full=(k == 0), reader=node.name)
        if producer is None or (readers and name not in g.outputs and name != g.loss):
            return
        if readers and name != g.loss and name in g.outputs:
            return  # already labelled on the edge to its reader
        kind = "loss" if name == g.loss else "output"
        word = kind if name == g.loss or name in g.outputs else "unread"
        sink = ids[f"sink:{name}"] = f"o{len(ids)}"
        self.nodes.node(self.nodes.dot, sink, kind, sink_label(word, name),
                        self.nodes.tooltip(name))
        self._edge(tail, sink, name, full=not readers)

    def _edge(self, tail: str, head: str, tensor: str, full: bool, reader=None):
        graph = self.layout.graph
        source = graph.tensors[tensor].kind != "node"
        if self.snap is None:
            shape = _shape_text(graph.tensors[tensor].shape)
            label, attrs = structure_edge_label(tensor, shape), {"color": PLAIN_EDGE}
        else:
            label, attrs = value_edge_label(graph, tensor, self.snap, self.scale,
                                            self.nodes.numbers, full)
        if source:
            label = None  # the source's node already shows its name, shape and numbers
        if (tensor, reader) in self.layout.flipped:
            tail, head, attrs = head, tail, {**attrs, "dir": "back"}
        self.nodes.dot.edge(tail, head, label=label, tooltip=self.nodes.tooltip(tensor),
                            **attrs)


def learned_grads_only(graph, snap: Snapshot | None) -> Snapshot | None:
    """``snap`` without the gradients of data inputs and constants (they are not learned)."""
    if snap is None or not snap.has_grads:
        return snap
    kept = {k: g for k, g in snap.grads.items()
            if k not in graph.tensors or graph.tensors[k].kind not in ("input", "constant")}
    return replace(snap, grads=kept, hidden_grads=len(kept) < len(snap.grads))


def build_dot(graph, snapshot: Snapshot | None = None, *, rankdir: str = "LR",
              scale: GradScale | None = None, title: str | None = None, legend: bool = True,
              precision: int = 4, max_elements: int = 16, fit: str | None = None,
              all_grads: bool = False) -> str:
    """The DOT source of ``graph``, with ``snapshot``'s values and gradients if given.

    Gradients are drawn for params and computed tensors; ``all_grads`` also draws those of
    data inputs and constants.  ``fit`` ("W,H" in inches) makes Graphviz scale the drawing
    down to fit (None: natural size; pictures are better fitted when saved, see
    :class:`~minigraph.render.GraphPicture`, which keeps the text readable).
    """
    rankdir = rankdir.upper()
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise MinigraphError(f"rankdir must be LR or TB, got {rankdir!r}")
    scale = scale or GradScale()
    if not all_grads:
        snapshot = learned_grads_only(graph, snapshot)
    dot = new_digraph(graph.name, rankdir, fit)
    nodes = NodeDrawer(dot, Layout.of(graph, compact=snapshot is None),
                       Numbers(precision, max_elements), snapshot, scale,
                       side_titles=rankdir in ("TB", "BT"))
    nodes.draw()
    EdgeDrawer(nodes, snapshot, scale).draw()
    dot.attr(label=legend_label(graph, snapshot, scale, nodes.kinds_used, title, legend))
    return dot.source
