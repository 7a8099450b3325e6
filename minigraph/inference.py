"""Inference: the model's outputs from its inputs alone, without targets or a loss.

A model file wires its loss to targets (``t``, ``label``) that a trained model no longer has
at prediction time.  :func:`predict` runs only the nodes the requested outputs depend on, so
it needs only the inputs those nodes read: for ``xor`` that is ``x``, never ``t``.  The plan
is the engine's plain plan, pruned by a rewrite (:func:`prune_to`), in evaluation mode (no
dropout), in batches so large inputs never build one huge pass.

``Model.predict`` (:mod:`minigraph.api`) and ``minigraph predict`` call :func:`predict`;
:func:`read_inputs` reads a CSV, ``.npy`` or ``.npz`` file of inputs with the same guarded
readers as the ``data:`` section's ``file:`` source.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .backend import to_numpy
from .data import load_data, num_examples
from .engine import Executor
from .errors import DataError, UnknownName, did_you_mean, known
from .graph import Graph

DEFAULT_BATCH = 256  # rows per pass when the caller does not say


def needs(graph: Graph, outputs) -> tuple[set, list]:
    """``(nodes, inputs)``: the nodes that ``outputs`` depend on, and the model inputs they
    read (in the file's order)."""
    for name in outputs:
        if name not in graph.tensors:
            raise UnknownName(f"no tensor '{name}' in model '{graph.name}'"
                              f"{did_you_mean(name, graph.tensors)}")
    wanted, nodes = set(outputs), set()
    for node in reversed(graph.nodes):
        if wanted.intersection(node.outputs):
            nodes.add(node.name)
            wanted.update(node.inputs)
    return nodes, [name for name in graph.inputs if name in wanted]


def prune_to(nodes: set):
    """A plan rewrite that keeps only the steps of ``nodes`` (see :func:`needs`)."""
    def rewrite(graph, steps, keep, wanted):
        return [step for step in steps if step.name in nodes]
    return rewrite


def predict(graph: Graph, params: dict, feeds: dict, *, backend, dtype: str = "float32",
            outputs=None, batch_size: int | None = None, seed: int = 0) -> dict:
    """The values of ``outputs`` (default: the model's outputs) on ``feeds``, as NumPy arrays.

    Only the inputs the outputs depend on are needed; other inputs of the model (targets)
    may be given and are left unread, and a name that is no input is refused; rows are run ``batch_size`` at a time (default :data:`DEFAULT_BATCH`) when every
    needed input and output has a batch axis, and the pieces joined.
    """
    outputs = list(graph.outputs if outputs is None else
                   [outputs] if isinstance(outputs, str) else outputs)
    nodes, inputs = needs(graph, outputs)
    missing = [name for name in inputs if name not in feeds]
    for name in feeds:
        if name not in graph.inputs:
            raise UnknownName(f"'{name}' is not an input of model '{graph.name}'"
                              f"{did_you_mean(name, graph.inputs)}; its inputs: "
                              f"{known(graph.inputs)}")
    if missing:
        raise DataError(f"to compute {', '.join(outputs)} the model needs input(s) "
                        f"{', '.join(missing)}; given: {', '.join(feeds) or 'nothing'}")
    feeds = {name: feeds[name] for name in inputs}
    executor = Executor(graph, backend, dtype=dtype, wrt=(), keep=outputs,
                        rewrites=(prune_to(nodes),))
    rng = backend.xp.random.default_rng(seed)
    pieces = []
    for chunk in _chunks(graph, feeds, outputs, batch_size):
        checked, _ = executor.check_feeds(chunk)
        run = executor.forward(params, checked, checked=True, rng=rng)
        pieces.append({t: to_numpy(run.values[t]) for t in outputs})
    if len(pieces) == 1:
        return pieces[0]
    return {t: np.concatenate([p[t] for p in pieces]) for t in outputs}


def _batched(graph: Graph, name: str) -> bool:
    shape = graph.tensors[name].shape
    return bool(shape) and isinstance(shape[0], str)


def _chunks(graph: Graph, feeds: dict, outputs, batch_size):
    """``feeds`` cut into row blocks (or whole, when something has no batch axis)."""
    if not feeds or not all(_batched(graph, t) for t in [*feeds, *outputs]):
        yield feeds
        return
    feeds = {k: v if hasattr(v, "shape") else np.asarray(v) for k, v in feeds.items()}
    n = num_examples(feeds)
    size = batch_size or DEFAULT_BATCH
    for start in range(0, max(n, 1), size):
        yield {k: v[start:start + size] for k, v in feeds.items()}


def read_inputs(graph: Graph, path, outputs=None) -> dict:
    """The inputs that ``outputs`` need, read from a CSV/TSV, ``.npy`` or ``.npz`` file.

    A CSV or ``.npy`` file is one input's rows (the model's outputs must need exactly one
    input); an ``.npz`` archive holds one array per needed input, by name.  Read with the
    ``file:`` source's readers (bounded sizes, no pickles), so it is checked the same way.
    """
    outputs = graph.outputs if outputs is None else outputs
    _, inputs = needs(graph, list(outputs))
    path = Path(path)
    if not inputs:
        raise DataError(f"{', '.join(outputs)} need no inputs, so there is nothing to read "
                        f"from {path}")
    if len(inputs) > 1 and path.suffix.lower() != ".npz":
        raise DataError(f"{', '.join(outputs)} need {len(inputs)} inputs "
                        f"({', '.join(inputs)}): give them as an .npz archive with one array "
                        f"per input, by name")
    declared = {name: graph.inputs[name].to_dict() for name in inputs}
    splits = load_data({"train": {"file": str(path.resolve())}}, declared, base_dir=Path("."))
    return {name: splits.train[name] for name in inputs}
