"""minigraph graph -> ONNX ModelProto.

Each primitive node becomes one ONNX node of the same name where ONNX has the op, else a small
composition of ONNX ops named ``NODE.PART`` (:data:`.export_ops.EXPORTERS`).  Params become
initializers, constants too; inputs keep their symbolic dimensions (``dim_param``); every tensor
gets a ``value_info`` whose shape is minigraph's (its element type from ONNX's inference); the
description becomes the model's ``doc_string``.  Metadata (``minigraph.groups``) records which
ONNX nodes each file node became -- a layer op, a loss written as several ops -- so import
gives back the file's own nodes.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ops.layers import LAYERS
from .base import DEFAULT_OPSET, OnnxError
from .export_ops import EXPORTERS
from .importer import DTYPES

ONNX_TYPES = {name: code for code, name in DTYPES.items()}
IR_VERSION = 8  # what opset 17 needs; onnxruntime reads it


class Exporter:
    """The ONNX nodes, initializers and names of one export."""

    def __init__(self, graph, params, opset):
        self.graph = graph
        self.opset = opset
        self.params = params
        self.nodes, self.initializers = [], []
        self.names = set(graph.tensors)
        self.parts: dict = {}  # minigraph node -> the ONNX node names it became
        self.constants: list = []  # initializers that are not params
        self.shared: dict = {}  # int64 value -> the one initializer holding it

    def fresh(self, base):
        name, i = base, 1
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    def const(self, base, value, dtype="float32"):
        """An initializer holding ``value``; returns its name."""
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        self.constants.append(name)
        return name

    def ints(self, value):
        """One int64 initializer per value (an index, Slice's starts/ends/axes, Unsqueeze's
        axes), shared by every node that reads it; returns its name."""
        value = np.asarray(value, dtype="int64")
        key = (value.shape, tuple(value.flat))
        if key not in self.shared:
            text = ",".join(str(v) for v in value.flat)
            self.shared[key] = self.const(f"int64[{text}]" if value.ndim else f"int64 {text}",
                                          value, "int64")
        return self.shared[key]

    def add(self, owner, op_type, inputs, outputs=None, name=None, **attrs):
        """Append an ONNX node for minigraph node ``owner``; returns its first output."""
        name = name or self.fresh_node(f"{owner.name}.{op_type}")
        outputs = outputs or [self.fresh(f"{name}.out")]
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=name,
                                           **attrs))
        self.parts.setdefault(owner.name, []).append(name)
        return outputs[0]

    def fresh_node(self, base):
        taken = {n.name for n in self.nodes} | {n.name for n in self.graph.nodes}
        name, i = base, 1
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        return name

    def shape(self, tensor):
        return self.graph.tensors[tensor].shape

    def dtype(self, tensor):
        return self.graph.tensors[tensor].dtype


def _needed(graph, targets):
    """The nodes (in order) and tensors that ``targets`` depend on."""
    producer = {n.outputs[0]: n for n in graph.nodes}
    need, stack = set(), list(targets)
    while stack:
        t = stack.pop()
        if t in need:
            continue
        need.add(t)
        if t in producer:
            stack.extend(producer[t].inputs)
    return [n for n in graph.nodes if n.outputs[0] in need], need


def _value_info(name, elem_type, shape):
    dims = [d if isinstance(d, (int, str)) else None for d in shape]
    return helper.make_tensor_value_info(name, elem_type, dims)


def _sources(ex, graph, need):
    """Graph inputs, and initializers for the params and constants that are read."""
    inputs = []
    for name, spec in graph.inputs.items():
        if name in need:
            inputs.append(_value_info(name, ONNX_TYPES[spec.real_dtype], spec.shape))
    for name in graph.params:
        if name in need:
            value = np.asarray(ex.params[name], dtype=np.float32)
            ex.initializers.append(numpy_helper.from_array(value, name))
    for name, c in graph.spec.constants.items():
        if name in need:
            value = np.asarray(c.value, dtype=c.dtype or "float32")
            ex.initializers.append(numpy_helper.from_array(value, name))
            ex.constants.append(name)
    return inputs


def _file_node(node):
    """The name of the file node ``node`` comes from (a recurrent layer's steps are grouped
    ``NAME/tK``, but they come from ``NAME``)."""
    if node.spec is not None:
        return node.spec.name
    return node.group or node.name


def _groups(graph, ex):
    """{file node: {node: its file entry, parts: ONNX node names, params: those it makes}}."""
    groups = {}
    for file_node in graph.spec.nodes:
        members = [n for n in graph.nodes if _file_node(n) == file_node.name]
        parts = [p for n in members for p in ex.parts.get(n.name, ())]
        if not parts:
            continue
        made = []
        if file_node.op in LAYERS:
            made = [t for n in members for t in n.inputs
                    if graph.tensors[t].kind == "param" and t.startswith(f"{file_node.name}.")]
        groups[file_node.name] = {"node": file_node.to_dict(), "parts": parts, "params": made}
    return groups


def _typed_value_info(model, graph, outputs):
    """value_info for every tensor: minigraph's shapes, ONNX's element types."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(inferred.graph.value_info) + list(inferred.graph.output)}
    known = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer}
    infos, outs = [], []
    for v in inferred.graph.value_info:
        if v.name in known:
            continue
        info = v
        if v.name in graph.tensors:
            info = _value_info(v.name, types[v.name], graph.tensors[v.name].shape)
        infos.append(info)
    for name in outputs:
        outs.append(_value_info(name, types.get(name, onnx.TensorProto.FLOAT),
                                graph.tensors[name].shape))
    return infos, outs


def export(graph, params, *, opset=DEFAULT_OPSET, with_loss=False):
    """The ONNX model of ``graph`` with ``params`` (name -> array), checked with
    ``onnx.checker.check_model(full_check=True)``.

    ``with_loss``: also export the loss (and the targets it reads) as an extra output.
    """
    if not 13 <= opset <= onnx.defs.onnx_opset_version():
        raise OnnxError(f"opset {opset} is not supported: choose 13 to "
                        f"{onnx.defs.onnx_opset_version()} (default {DEFAULT_OPSET})")
    outputs = list(graph.outputs)
    if with_loss:
        if graph.loss is None:
            raise OnnxError(f"model '{graph.name}' has no loss to export")
        outputs.append(graph.loss)
    nodes, need = _needed(graph, outputs)
    ex = Exporter(graph, params, opset)
    inputs = _sources(ex, graph, need)
    for node in nodes:
        EXPORTERS.lookup(node.op_name, OnnxError, "op without an ONNX export")(ex, node)
    g = helper.make_graph(ex.nodes, graph.name, inputs,
                          [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
                           for o in outputs], ex.initializers)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="minigraph", ir_version=IR_VERSION)
    infos, outs = _typed_value_info(model, graph, outputs)
    model.graph.ClearField("output")
    model.graph.output.extend(outs)
    model.graph.value_info.extend(infos)
    model.doc_string = graph.spec.description or ""
    meta = {"minigraph.name": graph.name,
            "minigraph.constants": json.dumps(ex.constants, separators=(",", ":")),
            "minigraph.groups": json.dumps(_groups(graph, ex), separators=(",", ":"))}
    if with_loss:
        meta["minigraph.loss"] = graph.loss
    for key in ("train", "data"):
        if getattr(graph.spec, key) is not None:
            meta[f"minigraph.{key}"] = json.dumps(getattr(graph.spec, key))
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model
