"""The model-file schema: plain data in, checked dataclasses out, and back again.

``parse_spec`` checks the keys and value types of every section and reports mistakes as
``FILE:LINE:COLUMN: message`` with a did-you-mean.  It does not look at the graph (that is
:mod:`minigraph.graph`).  ``ModelSpec.to_dict`` gives back exactly the data that was read, so
file -> spec -> file is the identity, and a model built in Python saves as a file that looks
hand-written (:func:`dump_yaml`).
"""
from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field

import yaml

from . import limits
from .errors import MinigraphError, ModelError, did_you_mean
from .limits import short
from .loader import Document, from_dict, parse_text

FORMAT_VERSION = 1
DTYPES = ("float32", "float64", "int32", "int64", "int8", "int16", "uint8", "uint16", "uint32",
          "uint64")
TOP_KEYS = ("minigraph", "name", "description", "inputs", "params", "constants", "nodes",
            "outputs", "loss", "data", "train")
REQUIRED_TOP = ("minigraph", "name", "inputs", "nodes", "outputs")
NODE_KEYS = ("name", "op", "inputs", "outputs", "attrs")
_SYMBOL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class InputSpec:
    """A tensor fed from data."""

    name: str
    shape: list
    dtype: str | None = None  # None: not written in the file (float32)

    @property
    def real_dtype(self) -> str:
        return self.dtype or "float32"

    def to_dict(self) -> dict:
        d = {"shape": list(self.shape)}
        if self.dtype is not None:
            d["dtype"] = self.dtype
        return d


@dataclass
class ParamSpec:
    """A trainable tensor with its initializer (checked by :mod:`minigraph.initializers`)."""

    name: str
    shape: list
    init: object = "zeros"
    has_init: bool = True  # False: not written in the file (zeros)

    def to_dict(self) -> dict:
        d = {"shape": list(self.shape)}
        if self.has_init:
            d["init"] = self.init
        return d


@dataclass
class ConstantSpec:
    """A fixed tensor: a number or nested list."""

    name: str
    value: object
    dtype: str | None = None

    def to_dict(self) -> dict:
        d = {"value": self.value}
        if self.dtype is not None:
            d["dtype"] = self.dtype
        return d


@dataclass
class NodeSpec:
    """One op as written in the file: name, op, input and output tensors, attributes."""

    name: str
    op: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    index: int = -1  # position in the file's node list (for error locations)

    def to_dict(self) -> dict:
        d = {"name": self.name, "op": self.op, "inputs": list(self.inputs),
             "outputs": list(self.outputs)}
        if self.attrs:
            d["attrs"] = dict(self.attrs)
        return d


@dataclass
class ModelSpec:
    """A whole model file, section by section, as written."""

    name: str
    inputs: dict
    nodes: list
    outputs: list
    params: dict = field(default_factory=dict)
    constants: dict = field(default_factory=dict)
    description: str | None = None
    loss: str | None = None
    data: dict | None = None
    train: dict | None = None
    version: int = FORMAT_VERSION
    doc: Document | None = field(default=None, repr=False, compare=False)
    present: tuple = field(default=(), repr=False, compare=False)  # optional keys written

    # -- locations -------------------------------------------------------------------------
    def at(self, *path):
        """Location of ``path`` in the source file (None-safe for specs built in Python)."""
        return self.doc.at(*path) if self.doc is not None else None

    def key_at(self, *path):
        return self.doc.key_at(*path) if self.doc is not None else None

    def node_at(self, node: NodeSpec, *path):
        return self.at("nodes", node.index, *path) if node.index >= 0 else None

    # -- back to data ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The model as plain data, keys in the canonical order; identity with the file."""
        d = {"minigraph": self.version, "name": self.name}
        if self.description is not None:
            d["description"] = self.description
        d["inputs"] = {k: v.to_dict() for k, v in self.inputs.items()}
        if self.params or "params" in self.present:
            d["params"] = {k: v.to_dict() for k, v in self.params.items()}
        if self.constants or "constants" in self.present:
            d["constants"] = {k: v.to_dict() for k, v in self.constants.items()}
        d["nodes"] = [n.to_dict() for n in self.nodes]
        d["outputs"] = list(self.outputs)
        if self.loss is not None:
            d["loss"] = self.loss
        if self.data is not None:
            d["data"] = self.data
        if self.train is not None:
            d["train"] = self.train
        return d


# ==== checking ====================================================================================

class _Checker:
    """Small helpers that raise located ModelErrors."""

    def __init__(self, doc: Document):
        self.doc = doc

    def fail(self, message, *path, key=False):
        loc = self.doc.key_at(*path) if key else self.doc.at(*path)
        raise ModelError(message, loc)

    def mapping(self, value, what, *path):
        if not isinstance(value, dict):
            self.fail(f"{what} must be a mapping, got {_kind(value)}", *path)
        return value

    def seq(self, value, what, *path):
        if not isinstance(value, list):
            self.fail(f"{what} must be a list, got {_kind(value)}", *path)
        return value

    def name(self, value, what, *path, key=False):
        if not isinstance(value, str) or not value:
            self.fail(f"{what} must be a name (a string), got {_kind(value)}", *path, key=key)
        problem = name_problem(value)
        if problem:
            self.fail(f"{what} {short(value)} {problem}", *path, key=key)
        return value

    def keys(self, mapping, allowed, what, *path, required=()):
        for key in mapping:
            if key not in allowed:
                self.fail(f"unknown key '{key}' in {what}{did_you_mean(key, allowed)}; "
                          f"allowed keys: {', '.join(allowed)}", *path, key, key=True)
        for key in required:
            if key not in mapping:
                self.fail(f"{what} is missing required key '{key}'", *path)

    def shape(self, value, what, *path):
        self.seq(value, f"the shape of {what}", *path)
        if len(value) > limits.MAX_RANK:
            self.fail(f"{what} has {len(value)} dimensions; at most {limits.MAX_RANK} are "
                      "allowed", *path)
        for i, d in enumerate(value):
            ok_int = isinstance(d, int) and not isinstance(d, bool) and d > 0
            ok_sym = isinstance(d, str) and _SYMBOL.match(d) and len(d) <= limits.MAX_NAME
            if not (ok_int or ok_sym):
                self.fail(f"dimension {i} of {what} must be a positive integer or a symbolic "
                          f"name such as 'batch', got {short(d)}", *path, i)
            if ok_int and d > limits.MAX_DIM:
                self.fail(f"dimension {i} of {what} is {d:,}; at most {limits.MAX_DIM:,} is "
                          "allowed", *path, i)
        known = math.prod(d for d in value if isinstance(d, int))
        batched = any(isinstance(d, str) for d in value)
        most = limits.MAX_EXAMPLE_ELEMENTS if batched else limits.MAX_ELEMENTS
        if known > most:
            per = " per example" if batched else ""
            self.fail(f"{what} would hold {known:,} numbers{per}; at most "
                      f"{most:,} are allowed in one tensor{per}", *path)
        return list(value)

    def dtype(self, value, what, *path):
        if value not in DTYPES:
            self.fail(f"dtype of {what} must be one of {', '.join(DTYPES)}, got {short(value)}"
                      f"{did_you_mean(value, DTYPES) if isinstance(value, str) else ''}", *path)
        return value


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a tensor, node, param or model, or None if it can.

    Names end up in messages, terminals, DOT files and SVG: control characters (NUL, ESC,
    newlines ...) and unbounded lengths are refused; printable text such as ``<``, ``&`` or
    quotes is fine (every output escapes it).
    """
    if len(name) > limits.MAX_NAME:
        return f"is {len(name):,} characters long; at most {limits.MAX_NAME} are allowed"
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in "\u2028\u2029":
            return f"holds the control character U+{ord(ch):04X}; names must be printable"
    if name != name.strip():
        return "starts or ends with blanks"
    return None


def _kind(value) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "nothing"}.get(type(value), "a value")


def parse_spec(doc: Document) -> ModelSpec:
    """Check a parsed document against the schema and return a :class:`ModelSpec`."""
    c = _Checker(doc)
    top = doc.data
    version, name, description = _parse_header(c, top)
    inputs = _parse_inputs(c, top["inputs"])
    params = _parse_params(c, top.get("params") or {})
    constants = _parse_constants(c, top.get("constants") or {})
    nodes = _parse_nodes(c, top["nodes"])
    outputs, loss, data, train = _parse_tail(c, top)
    present = tuple(k for k in ("params", "constants") if k in top)
    return ModelSpec(name=name, inputs=inputs, nodes=nodes, outputs=outputs,
                     params=params, constants=constants, description=description, loss=loss,
                     data=data, train=train, version=version, doc=doc, present=present)


def _parse_header(c: _Checker, top: dict) -> tuple:
    """The top-level keys, then ``(version, name, description)``."""
    c.keys(top, TOP_KEYS, "the model", required=())
    for key in REQUIRED_TOP:
        if key not in top:
            raise ModelError(f"the model is missing required key '{key}' "
                             f"(required: {', '.join(REQUIRED_TOP)})", c.doc.at())
    version = top["minigraph"]
    if isinstance(version, bool) or version != FORMAT_VERSION:
        c.fail(f"unsupported format version {short(version)}: this minigraph reads version "
               f"{FORMAT_VERSION} (write 'minigraph: {FORMAT_VERSION}')", "minigraph")
    name = c.name(top["name"], "'name'", "name")
    description = top.get("description")
    if description is not None and not isinstance(description, str):
        c.fail("'description' must be text", "description")
    if description is not None and len(description) > limits.MAX_DESCRIPTION:
        c.fail(f"'description' has {len(description):,} characters; at most "
               f"{limits.MAX_DESCRIPTION:,} are allowed", "description")
    return version, name, description


def _parse_inputs(c: _Checker, section) -> dict:
    inputs = {}
    for tname, entry in c.mapping(section, "'inputs'", "inputs").items():
        path = ("inputs", tname)
        c.name(tname, "the input name", *path, key=True)
        c.mapping(entry, f"input '{tname}'", *path)
        c.keys(entry, ("shape", "dtype"), f"input '{tname}'", *path, required=("shape",))
        shape = c.shape(entry["shape"], f"input '{tname}'", *path, "shape")
        dtype = c.dtype(entry["dtype"], f"input '{tname}'", *path, "dtype") \
            if "dtype" in entry else None
        inputs[tname] = InputSpec(tname, shape, dtype)
    return inputs


def _parse_params(c: _Checker, section) -> dict:
    params = {}
    for tname, entry in c.mapping(section, "'params'", "params").items():
        path = ("params", tname)
        c.name(tname, "the param name", *path, key=True)
        c.mapping(entry, f"param '{tname}'", *path)
        c.keys(entry, ("shape", "init"), f"param '{tname}'", *path, required=("shape",))
        shape = c.shape(entry["shape"], f"param '{tname}'", *path, "shape")
        for d in shape:
            if isinstance(d, str):
                c.fail(f"param '{tname}' has symbolic dimension '{d}': params need fixed "
                       "sizes", *path, "shape")
        if math.prod(shape) > limits.MAX_ELEMENTS:  # (already checked; kept explicit)
            c.fail(f"param '{tname}' is too large", *path, "shape")
        params[tname] = ParamSpec(tname, shape, entry.get("init", "zeros"), "init" in entry)
    return params


def _parse_constants(c: _Checker, section) -> dict:
    constants = {}
    for tname, entry in c.mapping(section, "'constants'", "constants").items():
        path = ("constants", tname)
        c.name(tname, "the constant name", *path, key=True)
        c.mapping(entry, f"constant '{tname}'", *path)
        c.keys(entry, ("value", "dtype"), f"constant '{tname}'", *path, required=("value",))
        dtype = c.dtype(entry["dtype"], f"constant '{tname}'", *path, "dtype") \
            if "dtype" in entry else None
        constants[tname] = ConstantSpec(tname, entry["value"], dtype)
    return constants


def _parse_nodes(c: _Checker, section) -> list:
    nodes = []
    for i, entry in enumerate(c.seq(section, "'nodes'", "nodes")):
        path = ("nodes", i)
        c.mapping(entry, f"node {i}", *path)
        c.keys(entry, NODE_KEYS, f"node {i}", *path, required=("name", "op", "outputs"))
        nname = c.name(entry["name"], f"the name of node {i}", *path, "name")
        op = c.name(entry["op"], f"the op of node '{nname}'", *path, "op")
        ins = c.seq(entry.get("inputs", []), f"the inputs of node '{nname}'", *path, "inputs")
        outs = c.seq(entry["outputs"], f"the outputs of node '{nname}'", *path, "outputs")
        for j, t in enumerate(ins):
            c.name(t, f"input {j} of node '{nname}'", *path, "inputs", j)
        for j, t in enumerate(outs):
            c.name(t, f"output {j} of node '{nname}'", *path, "outputs", j)
        attrs = c.mapping(entry.get("attrs", {}) or {}, f"the attrs of node '{nname}'",
                          *path, "attrs")
        nodes.append(NodeSpec(nname, op, list(ins), list(outs), dict(attrs), index=i))
    return nodes


def _parse_tail(c: _Checker, top: dict) -> tuple:
    """``(outputs, loss, data, train)``; ``data`` and ``train`` are checked by their readers."""
    outputs = c.seq(top["outputs"], "'outputs'", "outputs")
    for j, t in enumerate(outputs):
        c.name(t, f"output {j}", "outputs", j)
    loss = top.get("loss")
    if loss is not None:
        c.name(loss, "'loss'", "loss")
    data = top.get("data")
    if data is not None:
        c.mapping(data, "'data'", "data")
    train = top.get("train")
    if train is not None:
        c.mapping(train, "'train'", "train")
    return list(outputs), loss, data, train


def spec_from_dict(data: dict, file: str = "<dict>") -> ModelSpec:
    """Check an in-memory dict (Python API)."""
    return parse_spec(from_dict(data, file))


# ==== writing =====================================================================================

class _FlowList(list):
    """A list written inline: ``[x, W1]``."""


class _FlowDict(dict):
    """A mapping written inline: ``{name: fc1, op: matmul, ...}``."""


class _Dumper(yaml.SafeDumper):
    """Block style for sections, flow style for nodes and shapes, like hand-written files."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)  # "  - item" under a key, not "- item"


_Dumper.add_representer(_FlowList, lambda d, v: d.represent_sequence(
    "tag:yaml.org,2002:seq", v, flow_style=True))
_Dumper.add_representer(_FlowDict, lambda d, v: d.represent_mapping(
    "tag:yaml.org,2002:map", v.items(), flow_style=True))


def _str_representer(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def _flow(value):
    """Mark small leaves (lists of scalars, node entries, tensor entries) as inline."""
    if isinstance(value, dict):
        return _FlowDict({k: _flow(v) for k, v in value.items()})
    if isinstance(value, list):
        return _FlowList(_flow(v) for v in value)
    return value


def _styled(d: dict) -> dict:
    out = {}
    for key, value in d.items():
        if key in ("inputs", "params", "constants"):
            out[key] = {k: _flow(v) for k, v in value.items()}
        elif key == "nodes":
            out[key] = [_flow(n) for n in value]
        elif key == "outputs":
            out[key] = _flow(value)
        elif key in ("data", "train"):
            out[key] = {k: _flow(v) for k, v in value.items()}
        else:
            out[key] = value
    return out


def as_read(spec_or_dict, fmt: str) -> str | None:
    """The text a spec was read from, when it is still that file's model and ``fmt`` is that
    file's format (file -> graph -> file is then byte for byte the identity, comments and
    layout included); ``None`` otherwise (a dict, a spec built or changed in Python)."""
    doc = spec_or_dict.doc if isinstance(spec_or_dict, ModelSpec) else None
    if doc is None or doc.text is None or doc.fmt != fmt:
        return None
    try:
        unchanged = parse_spec(parse_text(doc.text, doc.file, fmt)).to_dict() \
            == spec_or_dict.to_dict()
    except MinigraphError:
        return None
    return doc.text if unchanged else None


def dump_yaml(spec_or_dict) -> str:
    """YAML text for a model, laid out like a hand-written file (a model read from a YAML
    file and not changed since: that file's text, see :func:`as_read`)."""
    same = as_read(spec_or_dict, "yaml")
    if same is not None:
        return same
    d = spec_or_dict.to_dict() if isinstance(spec_or_dict, ModelSpec) else spec_or_dict
    return yaml.dump(_styled(d), Dumper=_Dumper, sort_keys=False, width=100,
                     default_flow_style=False, allow_unicode=True)


def dump_json(spec_or_dict) -> str:
    """JSON text for a model (a model read from a JSON file and not changed since: that
    file's text, see :func:`as_read`)."""
    same = as_read(spec_or_dict, "json")
    if same is not None:
        return same
    d = spec_or_dict.to_dict() if isinstance(spec_or_dict, ModelSpec) else spec_or_dict
    return json.dumps(d, indent=2) + "\n"

