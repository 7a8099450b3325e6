"""ONNX model -> minigraph model file (a dict) and its weights.

The :class:`Importer` walks the ONNX graph in order and asks each node's converter
(:data:`.import_ops.CONVERTERS`, by op type) to emit minigraph nodes.  It knows every tensor's
shape (ONNX shape inference), dtype and, for initializers, ``Constant`` outputs and inputs the
caller binds (``static``), its value -- converters read attribute-like inputs (Reshape's shape,
ReduceSum's axes) from there.  Initializers become params (floating point) or constants
(integers) when a node reads them as tensors.  Metadata written by the exporter regroups layer
nodes and losses into the nodes of the original file.
"""
from __future__ import annotations

import json
import re

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import Location
from .base import OnnxError
from .import_ops import CONVERTERS

DTYPES = {
    onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT8: "int8", onnx.TensorProto.INT16: "int16",
    onnx.TensorProto.INT32: "int32", onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.UINT16: "uint16",
    onnx.TensorProto.UINT32: "uint32", onnx.TensorProto.UINT64: "uint64",
}
_SYMBOL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _load(source):
    if isinstance(source, onnx.ModelProto):
        return source, "<onnx model>"
    try:
        return onnx.load(str(source)), str(source)
    except OSError as exc:
        raise OnnxError(f"cannot read ONNX file {source}: {exc.strerror}") from None
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and onnx's own errors
        raise OnnxError(f"{source} is not an ONNX model ({type(exc).__name__}: "
                        f"{str(exc)[:160]})") from None


def dtype_name(elem_type, what, loc):
    """minigraph's name of an ONNX element type, or an OnnxError naming ``what``."""
    if elem_type not in DTYPES:
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in \
            onnx.TensorProto.DataType.values() else str(elem_type)
        raise OnnxError(f"{what} has dtype {name}, which minigraph does not have (it has "
                        f"{', '.join(DTYPES.values())})", loc)
    return DTYPES[elem_type]


class Importer:
    """The state of one import: what is known about each tensor, and what was emitted."""

    def __init__(self, model, file, static=None, constants=()):
        self.model = model
        self.loc = Location(file)
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          1)
        self.values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.initializers = set(self.values) - set(constants)  # those that are params
        self.values.update({k: np.asarray(v) for k, v in (static or {}).items()})
        self.shapes, self.dtypes = {}, {}
        self.inputs, self.params, self.constants, self.nodes = {}, {}, {}, []
        self.used = set()  # tensor names taken in the minigraph model
        self.node_names = set()
        self.weights = {}
        self.made = []  # params that regrouped layer nodes create themselves

    # -- what converters call ------------------------------------------------------------
    def fail(self, node, message, attribute=None):
        what = f" attribute '{attribute}'" if attribute else ""
        return OnnxError(f"node '{node.name or node.output[0]}' ({node.op_type}){what}: "
                         f"{message}", self.loc)

    def attr(self, node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def shape(self, tensor):
        """The tensor's shape as a tuple of ints and symbols (None where unknown)."""
        return self.shapes.get(tensor)

    def value(self, node, position, what):
        """The value of input ``position`` of ``node``, which must be known before running."""
        name = node.input[position] if position < len(node.input) else ""
        if not name:
            return None
        if name not in self.values:
            raise self.fail(node, f"input {position} ({what}, '{name}') must be a constant "
                                  "(an initializer): minigraph takes it as an attribute")
        return self.values[name]

    def only_reader(self, node, name):
        """Whether ``name`` is a param-to-be (a float initializer not read yet) that no
        other node reads."""
        if name not in self.initializers or name in self.used:
            return False
        readers = [n for n in self.model.graph.node if name in n.input]
        return readers == [node] and self.values[name].dtype.kind == "f"

    def tensor(self, name):
        """The minigraph tensor for ONNX tensor ``name``; an initializer, a Constant or a
        bound input becomes a param (floating point) or a constant (integers) when read."""
        if name in self.used or name not in self.values:
            return name
        array = self.values[name]
        self.used.add(name)
        if array.dtype.kind == "f" and name in self.initializers:
            self.params[name] = {"shape": list(array.shape)}
            self.weights[name] = array
        else:
            entry = {"value": array.tolist()}
            dtype = dtype_name(onnx.helper.np_dtype_to_tensor_dtype(array.dtype),
                               f"constant '{name}'", self.loc)
            if dtype != "float32":
                entry["dtype"] = dtype
            self.constants[name] = entry
        return name

    def fresh(self, base):
        """A tensor name not used yet, built from ``base``."""
        name, i = base, 1
        while name in self.used or name in self.shapes or name in self.values:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def emit(self, name, op, inputs, output, attrs=None):
        """Append a minigraph node (its name made unique); returns its output tensor."""
        base, i = name, 1
        while name in self.node_names:
            i += 1
            name = f"{base}_{i}"
        self.node_names.add(name)
        node = {"name": name, "op": op, "inputs": [self.tensor(t) for t in inputs],
                "outputs": [output]}
        if attrs:
            node["attrs"] = attrs
        self.nodes.append(node)
        self.used.add(output)
        return output

    # -- the graph -------------------------------------------------------------------------
    def read_types(self):
        """Shapes and dtypes of every tensor, from ONNX shape inference."""
        try:
            inferred = onnx.shape_inference.infer_shapes(self.model)
        except Exception:  # noqa: BLE001 - a model shape inference rejects: use what is declared
            inferred = self.model
        g = inferred.graph
        for info in list(g.input) + list(g.value_info) + list(g.output):
            if not info.type.HasField("tensor_type"):
                continue
            tt = info.type.tensor_type
            self.dtypes[info.name] = tt.elem_type
            if tt.HasField("shape"):
                self.shapes[info.name] = tuple(
                    d.dim_value if d.HasField("dim_value") else
                    (d.dim_param if _SYMBOL.match(d.dim_param or "") else None)
                    for d in tt.shape.dim)
        for name, array in self.values.items():
            self.shapes[name] = tuple(array.shape)

    def read_inputs(self):
        for info in self.model.graph.input:
            name = info.name
            if name in self.values:
                continue  # an initializer listed as input (old exporters), or bound
            if not info.type.HasField("tensor_type"):
                kind = info.type.WhichOneof("value")
                raise OnnxError(f"input '{name}' is a {kind}, not a tensor; minigraph "
                                "inputs are tensors", self.loc)
            dtype = dtype_name(info.type.tensor_type.elem_type, f"input '{name}'", self.loc)
            shape = []
            for i, d in enumerate(self.shapes.get(name, ())):
                if d == 0:
                    raise OnnxError(f"input '{name}' has a dimension of size 0; minigraph "
                                    "tensors have sizes of at least 1", self.loc)
                shape.append(d if d is not None else f"{_symbol(name)}_dim{i}")
            entry = {"shape": shape}
            if dtype != "float32":
                entry["dtype"] = dtype
            self.inputs[name] = entry
            self.used.add(name)

    def convert_nodes(self, groups):
        """Each ONNX node through its converter; the parts of a complete exporter group
        (a layer node, a loss written as several ops) become the group's file node."""
        present = {n.name for n in self.model.graph.node}
        owner = {}
        for group in groups.values():
            parts = group.get("parts", ())
            if parts and all(p in present for p in parts):
                owner.update({p: group for p in parts})
        done = set()
        for node in self.model.graph.node:
            group = owner.get(node.name)
            if group is not None:
                if id(group) not in done:
                    done.add(id(group))
                    self.add_file_node(group)
                continue
            self.convert(node)

    def add_file_node(self, group):
        """The exporter's record of a file node, with the tensors it reads materialized."""
        entry = dict(group["node"])
        entry["inputs"] = [self.tensor(t) for t in entry["inputs"]]
        self.nodes.append(entry)
        self.node_names.add(entry["name"])
        self.used.update(entry["outputs"])
        for pname in group.get("params", ()):  # the layer creates them; their values stay
            self.made.append(pname)
            if pname in self.values:
                self.weights[pname] = self.values[pname]

    def convert(self, node):
        if node.domain not in ("", "ai.onnx"):
            raise self.fail(node, f"operators of domain '{node.domain}' are not supported")
        convert = CONVERTERS.get(node.op_type)
        if convert is None:
            raise self.fail(node, "minigraph has no op for it (supported: "
                                  f"{', '.join(sorted(CONVERTERS))})")
        for out in node.output:
            if out and out in self.shapes and 0 in (self.shapes[out] or ()):
                raise self.fail(node, f"output '{out}' has a dimension of size 0; "
                                      "minigraph tensors have sizes of at least 1")
            if out:
                dtype_name(self.dtypes.get(out, onnx.TensorProto.FLOAT),
                           f"node '{node.name or node.output[0]}' ({node.op_type}) output "
                           f"'{out}'", self.loc)
        convert(self, node)

    def outputs(self):
        names = []
        for info in self.model.graph.output:
            name = info.name
            if name in self.inputs or name in self.values:  # an input passed straight through
                out = self.fresh(f"{name}_out")
                self.emit(f"{name}.identity", "identity", [name], out)
                name = out
            names.append(name)
        return names


def _symbol(name):
    text = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return text if _SYMBOL.match(text) else f"t_{text}"


def _meta(model):
    return {p.key: p.value for p in model.metadata_props}


def _json(meta, key, default):
    try:
        return json.loads(meta[key]) if key in meta else default
    except ValueError:
        return default


def import_onnx(source, *, static=None, name=None):
    """``(model dict, {param name: array})`` from an ONNX model (path or ModelProto).

    ``static`` binds graph inputs to known values (as if they were initializers): minigraph
    takes some ONNX inputs as attributes (Reshape's shape, ReduceSum's axes, Dropout's ratio).
    """
    model, file = _load(source)
    meta = _meta(model)
    imp = Importer(model, file, static, _json(meta, "minigraph.constants", []))
    imp.read_types()
    imp.read_inputs()
    imp.convert_nodes(_json(meta, "minigraph.groups", {}))
    outputs = imp.outputs()
    for pname in imp.made:
        imp.params.pop(pname, None)
    spec = {"minigraph": 1, "name": name or meta.get("minigraph.name") or model.graph.name
            or "imported"}
    description = model.doc_string or model.graph.doc_string
    if description:
        spec["description"] = description
    spec["inputs"] = imp.inputs
    if imp.params:
        spec["params"] = imp.params
    if imp.constants:
        spec["constants"] = imp.constants
    spec["nodes"] = imp.nodes
    loss = meta.get("minigraph.loss")
    spec["outputs"] = [o for o in outputs if o != loss] or outputs
    if loss in outputs:
        spec["loss"] = loss
    for key in ("data", "train"):
        value = _json(meta, f"minigraph.{key}", None)
        if value is not None:
            spec[key] = value
    return spec, imp.weights
