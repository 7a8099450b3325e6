"""What every part of :mod:`minigraph.onnx_io` shares: its error, the extra, the opset."""
from __future__ import annotations

from ..errors import MinigraphError

EXTRA = "minigraph[onnx]"
DEFAULT_OPSET = 17


class OnnxError(MinigraphError):
    """An ONNX file minigraph cannot import, or a model it cannot export."""


def require_onnx():
    """The ``onnx`` module, or an :class:`OnnxError` that says how to install it."""
    try:
        import onnx  # noqa: PLC0415 - optional dependency, imported when needed
    except ImportError:
        raise OnnxError(f"ONNX support needs the optional packages onnx and onnxruntime: "
                        f"pip install '{EXTRA}'") from None
    return onnx
