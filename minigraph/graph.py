"""The validated graph: tensors, primitive nodes in schedule order, shapes, on networkx.

``build_graph(spec)`` checks what the schema cannot: every tensor is defined exactly once and
every read names a defined tensor; there is no cycle; ops and attributes exist; layer ops are
expanded into primitives; and shapes are inferred through every op, with symbolic dimensions
such as ``batch``, so a wrong matmul is caught before any data exists.

The schedule is a deterministic topological order (``networkx.lexicographical_topological_sort``
keyed by position in the file), never set iteration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from . import limits
from .errors import ModelError, UnknownName, did_you_mean, known
from .initializers import InitError, check_init
from .ops import REGISTRY, Op
from .ops.base import AttrError, ShapeError, fmt_shape
from .ops.layers import LAYERS
from .spec import ModelSpec, NodeSpec, ParamSpec


@dataclass
class Tensor:
    """A named edge: who makes it (an input, a param, a constant or a node) and its shape."""

    name: str
    kind: str  # "input", "param", "constant" or "node"
    shape: tuple
    dtype: str = "float32"
    producer: str | None = None  # node name, for kind == "node"


@dataclass
class Node:
    """A primitive op bound to its attributes, reading and writing tensors by name."""

    name: str
    op: Op
    inputs: list
    outputs: list
    group: str | None = None  # the layer node it came from, if any
    spec: NodeSpec | None = field(default=None, repr=False)

    @property
    def op_name(self) -> str:
        return self.op.name


@dataclass
class Graph:
    """A checked model: its spec (as written), primitive nodes in order, tensors and params."""

    spec: ModelSpec
    nodes: list
    tensors: dict
    params: dict  # name -> ParamSpec, including params created by layer ops
    warnings: list = field(default_factory=list)

    # -- queries ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def inputs(self) -> dict:
        return self.spec.inputs

    @property
    def outputs(self) -> list:
        return self.spec.outputs

    @property
    def loss(self) -> str | None:
        return self.spec.loss

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise UnknownName(f"no node '{name}'{did_you_mean(name, [n.name for n in self.nodes])}")

    def consumers(self, tensor: str) -> list:
        """Nodes that read ``tensor``, in schedule order."""
        return [n for n in self.nodes if tensor in n.inputs]

    def groups(self) -> dict:
        """Layer groups: group name -> its nodes."""
        out: dict = {}
        for n in self.nodes:
            if n.group:
                out.setdefault(n.group, []).append(n)
        return out

    def to_networkx(self) -> nx.DiGraph:
        """Op nodes joined by edges that carry the tensor's name (for renderers and tools)."""
        g = nx.DiGraph()
        for n in self.nodes:
            g.add_node(n.name, op=n.op_name, group=n.group)
        for n in self.nodes:
            for t in n.inputs:
                producer = self.tensors[t].producer
                if producer is not None:
                    g.add_edge(producer, n.name, tensor=t)
        return g

    def to_dict(self) -> dict:
        """The model file's data (layer ops unexpanded): file -> graph -> file is identity."""
        return self.spec.to_dict()

    def param_count(self) -> int:
        return sum(math.prod(p.shape) for p in self.params.values())

    def __repr__(self) -> str:
        """One line, e.g. ``Graph('xor', 7 nodes, 4 params, 9 parameters)``."""
        return (f"Graph({self.name!r}, {len(self.nodes)} nodes, {len(self.params)} params, "
                f"{self.param_count():,} parameters)")


# ==== building ====================================================================================

def ancestors(graph: Graph, tensor: str) -> set:
    """Every tensor that ``tensor`` is computed from, itself included."""
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


def _fail(spec: ModelSpec, message: str, node: NodeSpec | None = None, *path):
    loc = spec.node_at(node, *path) if node is not None else spec.at(*path)
    raise ModelError(message, loc)


def _schedule(spec: ModelSpec, producers: dict) -> list:
    """File nodes in a deterministic topological order; a cycle is an error that shows it."""
    g = nx.DiGraph()
    for n in spec.nodes:
        g.add_node(n.name)
    for n in spec.nodes:
        for t in n.inputs:
            if t in producers:
                g.add_edge(producers[t].name, n.name, tensor=t)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        names = [a for a, _ in cycle] + [cycle[0][0]]
        steps = " -> ".join(f"{a} --{g.edges[a, b]['tensor']}-->" for a, b in cycle)
        first = next(n for n in spec.nodes if n.name == names[0])
        _fail(spec, f"the graph has a cycle: {steps} {names[0]} (a tensor cannot depend on "
                    "itself; feed-back loops are not allowed)", first, "inputs")
    index = {n.name: n.index if n.index >= 0 else i for i, n in enumerate(spec.nodes)}
    by_name = {n.name: n for n in spec.nodes}
    return [by_name[name] for name in nx.lexicographical_topological_sort(g, key=index.get)]


def _define_sources(spec: ModelSpec) -> dict:
    """Tensors defined by inputs, params and constants; a name defined twice is an error."""
    tensors: dict = {}
    for section, kind in (("inputs", "input"), ("params", "param"), ("constants", "constant")):
        for name, entry in getattr(spec, section).items():
            if name in tensors:
                _fail(spec, f"tensor '{name}' is defined twice: as {tensors[name].kind} and as "
                            f"{kind}", None, section, name)
            if kind == "constant":
                try:
                    value = np.asarray(entry.value, dtype=np.float64)
                except (ValueError, TypeError):
                    _fail(spec, f"constant '{name}' must be a number or a nested list of "
                                "numbers of equal lengths", None, section, name, "value")
                tensors[name] = Tensor(name, kind, value.shape, entry.dtype or "float32")
            elif kind == "param":
                try:
                    check_init(entry.init, entry.shape)
                except InitError as exc:
                    _fail(spec, f"param '{name}': {exc}", None, section, name, "init")
                tensors[name] = Tensor(name, kind, tuple(entry.shape))
            else:
                tensors[name] = Tensor(name, kind, tuple(entry.shape), entry.real_dtype)
    return tensors


def _bind_op(spec: ModelSpec, node: NodeSpec):
    """Look up the node's op (primitive or layer) and bind its attributes."""
    cls = REGISTRY.get(node.op) or LAYERS.get(node.op)
    if cls is None:
        every = list(REGISTRY) + list(LAYERS)
        _fail(spec, f"node '{node.name}': unknown op '{node.op}'{did_you_mean(node.op, every)}"
                    "; 'minigraph ops' lists them all", node, "op")
    try:
        op = cls(**node.attrs)
    except AttrError as exc:
        bad = next((k for k in node.attrs if k not in cls.attrs), None)
        path = ("attrs", bad) if bad else ("attrs",)
        loc = spec.key_at("nodes", node.index, *path) if node.index >= 0 and bad else \
            spec.node_at(node, *path)
        raise ModelError(f"node '{node.name}' ({node.op}): {exc}", loc) from None
    lo, hi = cls.arity()
    n = len(node.inputs)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else (f"{lo} or more" if hi is None else f"{lo} to {hi}")
        plural = "" if want == "1" else "s"
        _fail(spec, f"node '{node.name}' ({node.op}) takes {want} input{plural} "
                    f"({', '.join(cls.inputs)}), got {n}", node, "inputs")
    if len(node.outputs) != 1:
        _fail(spec, f"node '{node.name}' ({node.op}) has one output, got {len(node.outputs)}",
              node, "outputs")
    return op


def _infer(spec, node: NodeSpec, op: Op, name: str, inputs: list, tensors: dict):
    shapes = [tensors[t].shape for t in inputs]
    try:
        shape = tuple(op.infer(*shapes))
    except ShapeError as exc:
        given = ", ".join(f"{t} {fmt_shape(tensors[t].shape)}" for t in inputs)
        label = name if name == node.name else f"{node.name}' ('{name}"
        _fail(spec, f"node '{label}' ({op.name}): {exc}; inputs: {given}", node, "op")
    _check_size(spec, node, f"the output of node '{name}' ({op.name})", shape)
    return shape


def _check_size(spec, node, what, shape):
    """Refuse a tensor larger than the limits, per example (known dimensions only)."""
    known_dims = [d for d in shape if isinstance(d, int)]
    batched = len(known_dims) < len(shape)
    most = limits.MAX_EXAMPLE_ELEMENTS if batched else limits.MAX_ELEMENTS
    if any(d > limits.MAX_DIM or d < 0 for d in known_dims) or math.prod(known_dims) > most:
        per = " per example" if batched else ""
        _fail(spec, f"{what} would have shape {fmt_shape(shape)}: "
                    f"{math.prod(known_dims):,} numbers{per}, more than the "
                    f"{most:,} allowed in one tensor{per}", node, "op")


def _index_producers(spec: ModelSpec, tensors: dict) -> dict:
    """Tensor -> the file node that writes it; node names unique, each tensor written once."""
    producers: dict = {}
    names: dict = {}
    for node in spec.nodes:
        if node.name in names:
            _fail(spec, f"node name '{node.name}' is used twice (nodes {names[node.name]} and "
                        f"{node.index}); node names must be unique", node, "name")
        names[node.name] = node.index
        for t in node.outputs:
            if t in tensors:
                _fail(spec, f"node '{node.name}' writes tensor '{t}', which is already defined "
                            f"as {tensors[t].kind}", node, "outputs")
            if t in producers:
                _fail(spec, f"tensor '{t}' is written by two nodes: '{producers[t].name}' and "
                            f"'{node.name}'; each tensor has one producer", node, "outputs")
            producers[t] = node
    return producers


def _check_reads(spec: ModelSpec, tensors: dict, producers: dict) -> None:
    """Every tensor a node reads is defined (by a source or a node)."""
    defined = list(tensors) + list(producers)
    for node in spec.nodes:
        for j, t in enumerate(node.inputs):
            if t not in tensors and t not in producers:
                _fail(spec, f"node '{node.name}' reads undefined tensor '{t}'"
                            f"{did_you_mean(t, defined)}; defined tensors: {known(defined)}",
                      node, "inputs", j)


def _add_primitive(spec, node: NodeSpec, op: Op, tensors: dict, nodes: list) -> None:
    """A primitive file node: infer its output's shape and append it."""
    out = node.outputs[0]
    shape = _infer(spec, node, op, node.name, node.inputs, tensors)
    tensors[out] = Tensor(out, "node", shape, "float32", node.name)
    op.node_name, op.node_inputs = node.name, tuple(node.inputs)  # for runtime messages
    nodes.append(Node(node.name, op, list(node.inputs), [out], None, node))


def _add_layer_params(spec, node: NodeSpec, new_params: dict, tensors: dict, producers: dict,
                      params: dict) -> None:
    """The params a layer creates: fresh names, sizes within limits, valid initializers."""
    for pname, (pshape, init) in new_params.items():
        if pname in tensors or pname in producers:
            _fail(spec, f"layer '{node.name}' creates param '{pname}', but that name is "
                        "already defined", node, "name")
        _check_size(spec, node, f"param '{pname}' of layer '{node.name}'", pshape)
        try:
            check_init(init, pshape)
        except InitError as exc:
            _fail(spec, f"node '{node.name}': {exc}", node, "attrs")
        params[pname] = ParamSpec(pname, list(pshape), init)
        tensors[pname] = Tensor(pname, "param", tuple(pshape))


def _add_layer_nodes(spec, node: NodeSpec, new_nodes: list, tensors: dict, nodes: list) -> None:
    """The primitives a layer expands into, each bound and shape-checked, in their order."""
    for sub_name, op_name, sub_inputs, sub_out, attrs, *group in new_nodes:
        sub_inputs = [node.inputs[0] if t is None else t for t in sub_inputs]
        try:
            sub_op = REGISTRY[op_name](**attrs)
        except AttrError as exc:  # the layer's attrs passed on to a primitive
            _fail(spec, f"node '{node.name}' ({node.op}): {exc}", node, "attrs")
        shape = _infer(spec, node, sub_op, sub_name, sub_inputs, tensors)
        tensors[sub_out] = Tensor(sub_out, "node", shape, "float32", sub_name)
        nodes.append(Node(sub_name, sub_op, sub_inputs, [sub_out],
                          group[0] if group else node.name, node))


def _expand_layer(spec, node: NodeSpec, op, tensors: dict, producers: dict, params: dict,
                  nodes: list) -> None:
    """A layer file node: its new params, then its primitives (grouped under its name)."""
    try:
        new_params, new_nodes = op.expand_inputs(
            node.name, [tensors[t].shape for t in node.inputs], list(node.inputs),
            node.outputs[0])
    except ShapeError as exc:
        _fail(spec, f"node '{node.name}' ({node.op}): {exc}", node, "op")
    _add_layer_params(spec, node, new_params, tensors, producers, params)
    _add_layer_nodes(spec, node, new_nodes, tensors, nodes)


def _build_nodes(spec: ModelSpec, tensors: dict, producers: dict, params: dict) -> list:
    """Primitive nodes in schedule order: bind each op, expand layers, infer shapes."""
    nodes: list = []
    for node in _schedule(spec, producers):
        op = _bind_op(spec, node)
        if node.op in LAYERS:
            _expand_layer(spec, node, op, tensors, producers, params, nodes)
        else:
            _add_primitive(spec, node, op, tensors, nodes)
    return nodes


def _check_outputs(spec: ModelSpec, tensors: dict) -> None:
    """The outputs name tensors; the loss names a scalar tensor (every dimension 1)."""
    for j, t in enumerate(spec.outputs):
        if t not in tensors:
            _fail(spec, f"output '{t}' is not a tensor of the graph{did_you_mean(t, tensors)}",
                  None, "outputs", j)
    if spec.loss is not None:
        if spec.loss not in tensors:
            _fail(spec, f"loss '{spec.loss}' is not a tensor of the graph"
                        f"{did_you_mean(spec.loss, tensors)}", None, "loss")
        shape = tensors[spec.loss].shape
        if any(d != 1 for d in shape):
            _fail(spec, f"loss '{spec.loss}' must be a scalar, but its shape is "
                        f"{fmt_shape(shape)} (reduce it with sum or mean)", None, "loss")


def _unused_param_warnings(spec: ModelSpec, params: dict, nodes: list) -> list:
    """A located warning for each param no node reads."""
    warnings = []
    read = {t for n in nodes for t in n.inputs}
    for pname in params:
        if pname not in read:
            loc = spec.key_at("params", pname)
            where = f"{loc}: " if loc else ""
            warnings.append(f"{where}warning: param '{pname}' is not used by any node")
    return warnings


def build_graph(spec: ModelSpec) -> Graph:
    """Check ``spec`` as a graph, expand layer ops and infer every tensor's shape."""
    tensors = _define_sources(spec)
    params = dict(spec.params)
    producers = _index_producers(spec, tensors)
    _check_reads(spec, tensors, producers)
    nodes = _build_nodes(spec, tensors, producers, params)
    _check_outputs(spec, tensors)
    warnings = _unused_param_warnings(spec, params, nodes)
    return Graph(spec, nodes, tensors, params, warnings)
