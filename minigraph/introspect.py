"""What ``minigraph check``, ``summary`` and ``ops`` report, as data (the CLI prints it).

Nothing here reads files or prints: :func:`minigraph.api.check_model` loads the data and
calls :func:`check_model`; ``cli/text.py`` turns these rows into text.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np

from .data import num_examples
from .gradcheck import check_gradients
from .graph import Graph
from .ops import REGISTRY
from .ops.layers import LAYERS
from .errors import UnknownName, did_you_mean
from .options import describe, document
from .text import fmt_shape


@dataclass
class SummaryRow:
    """One written node (``depth`` 0; a layer op as one row) or, expanded, one of the primitive
    nodes a layer op became (``depth`` 1).  ``params`` counts the values of the params first
    read here; ``shared`` names params read here that an earlier row already counted."""

    node: str
    op: str
    inputs: str
    output: str
    shape: str
    params: int
    shared: list = field(default_factory=list)
    depth: int = 0


@dataclass
class Summary:
    """A model at a glance: its name, size and description, and one row per written node.

    ``params`` is the number of param values, each param counted once however many nodes
    read it; every param is trained (``trainable``); ``constants`` counts constant values
    (never trained).  ``tensors`` is the number of params (tensors).
    """

    name: str
    nodes: int
    params: int
    description: str | None
    rows: list
    layers: int = 0
    tensors: int = 0
    trainable: int = 0
    constants: int = 0


def summary(graph: Graph, expand: bool = False) -> Summary:
    """What ``minigraph summary`` shows: counts, the description and :func:`summary_rows`."""
    constants = sum(int(np.size(c.value)) for c in graph.spec.constants.values())
    total = graph.param_count()
    return Summary(graph.name, len(graph.nodes), total, graph.spec.description,
                   summary_rows(graph, expand), len(graph.spec.nodes), len(graph.params),
                   total, constants)


def summary_rows(graph: Graph, expand: bool = False) -> list:
    """One row per written node (a layer op's primitives below it when ``expand``), in the
    schedule's order; each param's values are counted at the first row that reads it."""
    counted: set = set()

    def row(name, op, inputs, output, depth):
        reads = [t for t in dict.fromkeys(inputs) if graph.tensors[t].kind == "param"]
        first = [t for t in reads if t not in counted]
        counted.update(first)
        count = sum(math.prod(graph.tensors[t].shape) for t in first)
        return SummaryRow(name, op, ", ".join(inputs), output,
                          fmt_shape(graph.tensors[output].shape), count,
                          [t for t in reads if t not in first], depth)

    rows, seen = [], set()
    for n in graph.nodes:
        if n.group is None:
            rows.append(row(n.name, n.op_name, n.inputs, n.outputs[0], 0))
            continue
        if n.group in seen:
            continue
        seen.add(n.group)
        spec, members = n.spec, graph.groups()[n.group]
        reads = [t for m in members for t in m.inputs]
        layer = row(spec.name, spec.op, reads, spec.outputs[0], 0)
        layer.inputs = ", ".join(spec.inputs)
        rows.append(layer)
        if expand:
            rows.extend(SummaryRow(m.name, m.op_name, ", ".join(m.inputs), m.outputs[0],
                                   fmt_shape(graph.tensors[m.outputs[0]].shape),
                                   sum(math.prod(graph.tensors[t].shape) for t in m.inputs
                                       if graph.tensors[t].kind == "param"), [], 1)
                        for m in members)
    return rows


def shape_rows(graph: Graph) -> list:
    """(tensor, kind, shape, dtype) for every tensor, sources first, then in schedule order."""
    return [(t.name, t.kind, fmt_shape(t.shape), t.dtype) for t in graph.tensors.values()]


@dataclass
class OpInfo:
    name: str
    inputs: str
    attrs: str
    doc: str
    layer: bool = False


def op_infos() -> list:
    """Every registered op and layer op with inputs, attributes (defaults) and doc."""
    out = []
    for registry, layer in ((REGISTRY, False), (LAYERS, True)):
        for name in sorted(registry):
            cls = registry[name]
            out.append(OpInfo(name, ", ".join(cls.inputs), describe(cls.attrs), cls.doc, layer))
    return out


@dataclass
class OpDoc:
    """One op in full, for ``minigraph ops NAME``: its whole docstring and each attribute."""

    name: str
    inputs: str
    doc: str
    attrs: list  # (name, default or 'required', doc)
    layer: bool = False


def op_doc(name: str) -> OpDoc:
    """The op or layer op called ``name`` in full (an UnknownName with a did-you-mean if none)."""
    cls = REGISTRY.get(name) or LAYERS.get(name)
    if cls is None:
        raise UnknownName(f"no op '{name}'{did_you_mean(name, [*REGISTRY, *LAYERS])}; "
                          "'minigraph ops' lists them all")
    text = inspect.cleandoc(cls.__doc__ or "") or cls.doc
    if cls.doc and not text.startswith(cls.doc[:20]):
        text = cls.doc + ("\n\n" + text if text else "")
    return OpDoc(name, ", ".join(cls.inputs), text, document(cls.attrs), name in LAYERS)


def random_feeds(graph: Graph, batch: int = 4, seed: int = 0) -> dict:
    """Made-up data of the declared shapes (symbolic dims = ``batch``), for checks without data.

    An integer input (class labels) gets indices below the class count of the node reading it.
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, spec in graph.inputs.items():
        shape = tuple(batch if isinstance(d, str) else d for d in spec.shape)
        if spec.real_dtype.startswith("int"):
            classes = 2
            for node in graph.consumers(name):
                others = [t for t in node.inputs if t != name]
                if others and graph.tensors[others[0]].shape:
                    last = graph.tensors[others[0]].shape[-1]
                    classes = last if isinstance(last, int) else classes
            feeds[name] = rng.integers(0, classes, shape)
        else:
            feeds[name] = rng.uniform(-1.0, 1.0, shape)
    return feeds


@dataclass
class CheckReport:
    """A valid model's tensors (:func:`shape_rows`) and its gradient check, if it ran."""

    graph: Graph
    feeds_from: str
    grads: list = field(default_factory=list)
    shapes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.grads)

    @property
    def source(self) -> str:
        """The model's file, or its name when it came from elsewhere."""
        spec = self.graph.spec
        return spec.doc.file if spec.doc else self.graph.name


def check_model(graph: Graph, splits=None, *, seed: int = 0, batch: int = 4, full: bool = False,
                progress=None) -> CheckReport:
    """Check every param's gradient numerically, on the model's own data when it can.

    ``splits`` is the model's data as ``run`` loads it (None: no data section); the caller
    (:func:`minigraph.api.check_model`) has already checked the ``train`` section and loaded
    it.  The gradient check uses up to ``batch`` examples of the file's own training data when
    it is inline, a file or a generator; otherwise (named data sets, or no data) made-up data
    of the right shapes.
    """
    shapes = shape_rows(graph)
    if graph.loss is None:
        return CheckReport(graph, "no loss: gradient check skipped", shapes=shapes)
    feeds, source = None, "made-up data of the declared shapes"
    train = (graph.spec.data or {}).get("train") or {}
    if splits is not None and not (isinstance(train, dict) and "dataset" in train):
        if splits.train:
            feeds = {k: v[:batch] if np.ndim(v) else v for k, v in splits.train.items()}
            source = f"the first {max(num_examples(feeds), 1)} training examples"
    if feeds is None:
        feeds = random_feeds(graph, batch, seed)
    sample = {"max_elements": None} if full else {}
    return CheckReport(graph, source, check_gradients(graph, feeds, seed=seed, progress=progress,
                                                      **sample), shapes)
