"""ONNX interchange: export a minigraph model to ONNX, import an ONNX model as a model file.

``export_model`` (``minigraph export``) writes params as initializers, every tensor's shape as
``value_info`` (Netron shows it on each edge), symbolic dimensions as ``dim_param``, the
description as ``doc_string``, and how layer nodes and losses were expanded as metadata, so
``import_model`` (``minigraph import``) can give back the same model file.  Every exported
file passes ``onnx.checker.check_model(full_check=True)``.

``import_model`` maps each ONNX op to minigraph ops (:mod:`.import_ops`); an op, attribute or
dtype minigraph cannot express is one :class:`OnnxError` naming the node, the op and the
attribute -- never a silently different model.

Both need the optional ``onnx`` package (``pip install 'minigraph[onnx]'``); without it they
raise an :class:`OnnxError` that names the extra.  The default opset is
:data:`DEFAULT_OPSET` (17: run by every onnxruntime since 1.13).
"""
from __future__ import annotations

from .base import DEFAULT_OPSET, EXTRA, OnnxError, require_onnx


def import_model(source, *, static=None, name=None):
    """``(model dict, {param: array})`` from an ONNX file path, bytes or ModelProto."""
    require_onnx()
    from .importer import import_onnx  # noqa: PLC0415
    return import_onnx(source, static=static, name=name)


def export_model(graph, params, **options):
    """The ONNX ModelProto of a checked graph with ``params``; see :func:`.exporter.export`."""
    require_onnx()
    from .exporter import export  # noqa: PLC0415
    return export(graph, params, **options)


__all__ = ["DEFAULT_OPSET", "EXTRA", "OnnxError", "export_model", "import_model", "require_onnx"]
