"""Build a model in Python; it saves as a file that reads like a hand-written one.

>>> b = GraphBuilder("tiny")
>>> x = b.input("x", ["batch", 2]); W = b.param("W", [2, 1], init="xavier_uniform")
>>> y = b.node("matmul", [x, W], name="fc", out="y")
>>> b.output(y)
>>> t = b.input("t", ["batch", 1]); b.set_loss(b.mse(y, t, name="cost", out="L"))
>>> b.set_data({"generator": "linear"}); b.set_train(epochs=10, optimizer={"type": "sgd"})
>>> graph = b.build()          # checked like a file
>>> b.save("tiny.yaml")        # minigraph: 1, name: tiny, inputs: ...
"""
from __future__ import annotations

from .api import save_model
from .graph import build_graph
from .ops import REGISTRY
from .ops.layers import LAYERS
from .spec import dump_yaml, spec_from_dict


class GraphBuilder:
    """Collects inputs, params, constants and nodes in file order."""

    def __init__(self, name: str, description: str | None = None):
        self.name = name
        self.description = description
        self.inputs: dict = {}
        self.params: dict = {}
        self.constants: dict = {}
        self.nodes: list = []
        self.outputs: list = []
        self.loss: str | None = None
        self.data: dict | None = None
        self.train: dict | None = None
        self._count: dict = {}

    def input(self, name, shape, dtype=None) -> str:
        self.inputs[name] = {"shape": list(shape)} | ({"dtype": dtype} if dtype else {})
        return name

    def param(self, name, shape, init=None) -> str:
        self.params[name] = {"shape": list(shape)} | ({"init": init} if init is not None else {})
        return name

    def constant(self, name, value, dtype=None) -> str:
        self.constants[name] = {"value": value} | ({"dtype": dtype} if dtype else {})
        return name

    def node(self, op, inputs, *, name=None, out=None, **attrs) -> str:
        """Add a node; returns the name of its output tensor."""
        if name is None:
            self._count[op] = self._count.get(op, 0) + 1
            name = f"{op}{self._count[op]}"
        out = out or name
        entry = {"name": name, "op": op, "inputs": list(inputs), "outputs": [out]}
        if attrs:
            entry["attrs"] = attrs
        self.nodes.append(entry)
        return out

    def __getattr__(self, op):
        """``b.matmul(x, W, out="z")`` is ``b.node("matmul", [x, W], out="z")``."""
        if op in REGISTRY or op in LAYERS:
            return lambda *inputs, **kw: self.node(op, inputs, **kw)
        raise AttributeError(op)

    def output(self, *names) -> None:
        """Declare the tensors the model reports (``outputs:``)."""
        self.outputs.extend(names)

    def set_loss(self, name: str) -> str:
        """The scalar tensor training minimizes (``loss:``); returns it."""
        self.loss = name
        return name

    def set_data(self, train: dict, test: dict | None = None) -> None:
        """The ``data:`` section: a train source and optionally a test source, as in a file,
        e.g. ``b.set_data({"generator": "xor"})`` or ``b.set_data({"inline": {"x": ..., "t":
        ...}})``; checked when the model is built."""
        self.data = {"train": train} | ({"test": test} if test is not None else {})

    def set_train(self, **keys) -> None:
        """The ``train:`` section by key, as in a file: ``b.set_train(epochs=100, optimizer=
        {"type": "sgd", "lr": 0.5}, metrics=["accuracy"])``; checked when it runs."""
        self.train = keys

    def to_dict(self) -> dict:
        d = {"minigraph": 1, "name": self.name}
        if self.description:
            d["description"] = self.description
        d["inputs"] = self.inputs
        if self.params:
            d["params"] = self.params
        if self.constants:
            d["constants"] = self.constants
        d["nodes"] = self.nodes
        d["outputs"] = self.outputs
        for key in ("loss", "data", "train"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d

    def build(self):
        """The checked :class:`~minigraph.graph.Graph` (same checks as a file)."""
        return build_graph(spec_from_dict(self.to_dict(), f"<builder {self.name}>"))

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    def save(self, path) -> None:
        self.build()  # refuse to write a model that would not load
        save_model(self.to_dict(), path)
