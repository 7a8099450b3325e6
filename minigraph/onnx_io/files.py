"""The two file commands: ``minigraph export`` and ``minigraph import``.

``export_file`` writes MODEL as ONNX (random params from the file's seed, or ``params`` from a
checkpoint / ``.npz``).  ``import_file`` writes an ONNX file as a model file and its weights:
inline initializers (``init: {value: ...}``) when they are small, else ``NAME.npz`` beside the
model file, a plain archive of params by name that ``run --load``, ``eval --params`` and
``render --params`` read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..api import Model, load_graph
from ..checkpoint import load_checkpoint
from ..errors import MinigraphError
from ..spec import dump_json, dump_yaml
from . import export_model, import_model
from .base import DEFAULT_OPSET, require_onnx

INLINE_LIMIT = 64  # params with at most this many numbers in all are written inline


@dataclass
class ExportResult:
    path: Path
    opset: int
    nodes: int
    initializers: int


@dataclass
class ImportResult:
    path: Path
    weights: Path | None
    nodes: int
    params: int


def export_file(model, out, *, params=None, opset=DEFAULT_OPSET, with_loss=False):
    """Write ``model`` (a path or graph) as ONNX to ``out``; returns an :class:`ExportResult`."""
    onnx = require_onnx()
    graph = load_graph(model)
    shapes = {k: tuple(p.shape) for k, p in graph.params.items()}
    values = load_checkpoint(params, params=shapes, partial=False).params if params else None
    m = Model(graph, params=values)
    proto = export_model(graph, {k: np.asarray(v) for k, v in m.params.items()},
                         opset=opset, with_loss=with_loss)
    out = Path(out)
    try:
        onnx.save(proto, str(out))
    except OSError as exc:
        raise MinigraphError(f"cannot write {out}: {exc.strerror}") from None
    return ExportResult(out, opset, len(proto.graph.node), len(proto.graph.initializer))


def import_file(source, out, *, name=None):
    """Write ONNX file ``source`` as model file ``out`` (YAML, or JSON by suffix), checked,
    with its weights inline or in ``out`` with suffix ``.npz``."""
    spec, weights = import_model(source, name=name)
    out = Path(out)
    total = sum(int(np.asarray(w).size) for w in weights.values())
    npz = None
    declared = spec.get("params", {})
    if total <= INLINE_LIMIT and all(k in declared for k in weights):
        for pname, value in weights.items():
            spec["params"][pname]["init"] = {"value": np.asarray(value, float).tolist()}
    else:
        npz = out.with_suffix(".npz")
        note = f"weights: {npz.name} (minigraph run {out.name} --load {npz.name})"
        spec["description"] = f"{spec['description']}\n{note}" if spec.get("description") \
            else note
    graph = load_graph(spec)  # a located error here would be an importer bug
    text = dump_json(spec) if out.suffix == ".json" else dump_yaml(spec)
    try:
        out.write_text(text)
        if npz is not None:
            np.savez(npz, **{k: np.asarray(v, np.float32) for k, v in weights.items()})
    except OSError as exc:
        raise MinigraphError(f"cannot write {exc.filename}: {exc.strerror}") from None
    return ImportResult(out, npz, len(graph.nodes), len(graph.params))
