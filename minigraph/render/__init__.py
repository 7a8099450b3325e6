"""Drawing a graph: ``dot.py`` turns a graph (and one pass's numbers) into DOT text,
``picture.py`` turns DOT text into SVG, PNG or PDF.

Pure presentation: nothing here runs a model.  :func:`minigraph.api.draw` runs the pass and
calls :func:`build_dot`, then wraps the text in a :class:`GraphPicture`.
"""
from .dot import (EXPLODING_COLOR, FIT_SIZE, NAN_COLOR, NODE_STYLES, VANISHING_COLOR,
                  GradScale, Snapshot, build_dot)
from .picture import FORMATS, GraphPicture, auto_picture, find_renderer, picture_format, pipe

__all__ = [
    "EXPLODING_COLOR", "FIT_SIZE", "FORMATS", "GradScale", "GraphPicture", "NAN_COLOR",
    "NODE_STYLES", "Snapshot", "VANISHING_COLOR", "build_dot", "find_renderer",
    "auto_picture", "picture_format", "pipe",
]
