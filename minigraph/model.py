"""The Python API: load a model, build one in Python, run it, read values and gradients.

>>> import minigraph as mg
>>> m = mg.load("models/backprop_basics.yaml")
>>> m.forward(); m.backward()
>>> m.grad("w")
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .backend import select, to_numpy
from .engine import Executor, init_params
from .errors import MinigraphError, did_you_mean
from .graph import Graph, build_graph
from .loader import read_file
from .spec import ModelSpec, dump_json, dump_yaml, parse_spec, spec_from_dict


def load_graph(source) -> Graph:
    """A checked graph from a file path, a dict, or a :class:`ModelSpec`."""
    if isinstance(source, Graph):
        return source
    if isinstance(source, ModelSpec):
        return build_graph(source)
    if isinstance(source, dict):
        return build_graph(spec_from_dict(source))
    return build_graph(parse_spec(read_file(source)))


class Model:
    """A graph with params on a backend, and the last pass's values and gradients.

    ``forward(feeds)`` runs the graph (feeds default to the file's first training batch or the
    model's constants); ``backward()`` differentiates the loss; ``value(name)`` and
    ``grad(name)`` read any tensor by name as a NumPy array.
    """

    def __init__(self, graph: Graph, *, backend=None, seed: int | None = None,
                 dtype: str = "float32", params: dict | None = None):
        self.graph = graph
        self.backend = select(backend)
        self.dtype = dtype
        train = graph.spec.train or {}
        self.seed = seed if seed is not None else int(train.get("seed", 0))
        self.executor = Executor(graph, self.backend, dtype=dtype, wrt="all")
        self.params = init_params(graph, self.seed, self.backend, dtype)
        if params is not None:
            self.set_params(params)
        self.last = None

    # -- params -----------------------------------------------------------------------------
    def set_params(self, params: dict) -> None:
        """Replace param values by name (e.g. from a checkpoint); shapes must match.

        The values are copied: training or changing the model's params afterwards never
        changes the caller's arrays (nor does changing those change the model).
        """
        for name, value in params.items():
            if name not in self.params:
                raise MinigraphError(f"no param '{name}' in model '{self.graph.name}'"
                                     f"{did_you_mean(name, self.params)}")
            value = np.asarray(to_numpy(value))
            if value.shape != self.params[name].shape:
                raise MinigraphError(f"param '{name}' has shape {self.params[name].shape} in "
                                     f"the model but {value.shape} in the given values")
            self.params[name] = self.backend.xp.array(value, dtype=self.dtype)  # a copy

    # -- running ----------------------------------------------------------------------------
    def forward(self, feeds: dict | None = None, *, training: bool = False) -> dict:
        """Run one forward pass; returns the model's outputs as NumPy arrays."""
        if feeds is None:
            feeds = self.default_feeds()
        rng = self.backend.xp.random.default_rng(self.seed)
        self.last = self.executor.forward(self.params, feeds, training=training, rng=rng)
        return {t: to_numpy(self.last.values[t]) for t in self.graph.outputs}

    def backward(self, loss: str | None = None) -> dict:
        """Differentiate the loss (default: the model's) after :meth:`forward`."""
        if self.last is None:
            self.forward()
        grads = self.executor.backward(self.last, loss)
        return {name: to_numpy(grads[name]) for name in self.params if name in grads}

    def value(self, name: str) -> np.ndarray:
        """The value of any tensor of the last pass (or a param)."""
        if self.last is not None and name in self.last.values:
            return to_numpy(self.last.values[name])
        if name in self.params:
            return to_numpy(self.params[name])
        raise KeyError(f"no value for tensor '{name}'{did_you_mean(name, self.graph.tensors)}"
                       + ("" if self.last else " (run forward() first)"))

    def grad(self, name: str) -> np.ndarray | None:
        """d(loss)/d(tensor) from the last backward pass (None if the loss does not reach it)."""
        if self.last is None or not self.last.grads:
            raise KeyError("no gradients yet: call backward() first")
        if name not in self.graph.tensors:
            raise KeyError(f"no tensor '{name}'{did_you_mean(name, self.graph.tensors)}")
        g = self.last.grads.get(name)
        return None if g is None else to_numpy(g)

    def default_feeds(self, data_dir=None) -> dict:
        """The first training batch of the file's data (``{}`` for a model without inputs)."""
        return first_batch(self.graph, data_dir, self.seed)

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Jupyter shows a model as its graph, with values and gradients once it has run."""
        from .render import draw

        return draw(self)._repr_mimebundle_(include, exclude)

    # -- saving -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return self.graph.to_dict()

    def save(self, path) -> None:
        """Write the model file (YAML or JSON by suffix); see also checkpoints for params."""
        save_model(self.graph.spec, path)


def load_splits(graph: Graph, data_dir=None):
    """The model's train and test data (paths in the file are relative to the file)."""
    from .data import load_data

    spec = graph.spec
    base = Path(spec.doc.file).parent if spec.doc is not None else Path(".")
    return load_data(spec.data, {k: v.to_dict() for k, v in spec.inputs.items()},
                     base_dir=base, data_dir=data_dir, at=lambda *k: spec.at("data", *k))


def first_batch(graph: Graph, data_dir=None, seed: int = 0) -> dict:
    """The first training batch of the model's data, unshuffled (``{}`` without inputs)."""
    from .data import iterate_batches

    if not graph.inputs:
        return {}
    splits = load_splits(graph, data_dir)
    if splits.train is None:
        raise MinigraphError(f"model '{graph.name}' has inputs ({', '.join(graph.inputs)}) but "
                             "no data: add a data section, or pass the inputs yourself")
    batch = (graph.spec.train or {}).get("batch_size")
    rng = np.random.default_rng(seed)
    return next(iter(iterate_batches(splits.train, batch, shuffle=False, rng=rng)))


def load(source, **kwargs) -> Model:
    """Load a model file (YAML/JSON path), a dict, or a spec, ready to run."""
    return Model(load_graph(source), **kwargs)


def save_model(spec_or_dict, path) -> None:
    """Write a model as YAML or JSON (by the file's suffix)."""
    path = Path(path)
    text = dump_json(spec_or_dict) if path.suffix.lower() == ".json" else dump_yaml(spec_or_dict)
    path.write_text(text, encoding="utf-8")
