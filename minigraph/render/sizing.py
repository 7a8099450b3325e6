"""How big a picture is drawn, and the finishing touches on Graphviz's SVG.

A picture is drawn at its natural size: Graphviz lays it out in points (72 to the inch)
and a PNG is rasterised at ``dpi`` (96 by default: 12-pt names are 16 px, 9-pt labels
12 px).  ``size`` ("W,H" in inches) asks for a picture that fits in W x H; it is shrunk
to fit, but never below :data:`MIN_SCALE` of its natural size, where the smallest labels
would stop being readable.  Nothing is ever enlarged to fill the box.

Graphviz writes each node's and edge's DOT id (``s0``, ``n0``, ``s0->n0``) as the SVG
``<title>`` that browsers show on hover; :func:`hover_titles` puts the element's tooltip
(tensor name, shape, value and gradient) there instead.  :func:`notebook_svg` lets a
notebook scale the picture to the cell's width.
"""
from __future__ import annotations

import re

from ..errors import MinigraphError

# Fitting never shrinks below 3/4 of the natural size: at 96 dpi that is 72 dpi, where the
# 9-pt edge labels are still 9 px tall and the 12-pt names 12 px.
MIN_SCALE = 0.75

_SVG_TAG = re.compile(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"')


def parse_size(text) -> tuple | None:
    """``"W,H"`` (inches; ``"W"`` alone is a square) as ``(W, H)``; None stays None."""
    if text is None:
        return None
    if isinstance(text, (tuple, list)):
        parts = list(text)
    else:
        parts = [p.strip() for p in str(text).split(",")]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 1:
        numbers = numbers * 2
    if len(numbers) != 2 or not all(0 < n < 1e4 for n in numbers):
        raise MinigraphError(f"size must be W,H in inches (two positive numbers, e.g. "
                             f"12,8), got {text!r}")
    return numbers[0], numbers[1]


def svg_size(svg: str) -> tuple:
    """The natural ``(width, height)`` of Graphviz's SVG, in points."""
    found = _SVG_TAG.search(svg)
    if not found:
        raise MinigraphError("could not read the picture's size from the renderer's SVG")
    return float(found.group(1)), float(found.group(2))


def fit_scale(natural: tuple, size: tuple | None) -> float:
    """The factor (at most 1, at least :data:`MIN_SCALE`) that fits ``natural`` points into
    ``size`` inches."""
    if size is None:
        return 1.0
    width, height = natural
    scale = min(1.0, size[0] * 72 / max(width, 1e-9), size[1] * 72 / max(height, 1e-9))
    return max(scale, MIN_SCALE)


def scaled_svg(svg: str, scale: float) -> str:
    """The SVG with its width and height (not its drawing) multiplied by ``scale``."""
    if scale == 1.0:
        return svg
    width, height = svg_size(svg)
    return _SVG_TAG.sub(f'<svg width="{width * scale:.2f}pt" height="{height * scale:.2f}pt"',
                        svg, count=1)


def notebook_svg(svg: str) -> str:
    """The SVG as a notebook shows it: as wide as the cell, never wider than its natural
    size and never narrower than :data:`MIN_SCALE` of it (the cell scrolls instead)."""
    try:
        width, _ = svg_size(svg)
    except MinigraphError:
        return svg
    style = (f'<svg width="100%" style="max-width: {width:.0f}pt; '
             f'min-width: {width * MIN_SCALE:.0f}pt; height: auto"')
    return re.sub(r'<svg width="[\d.]+pt" height="[\d.]+pt"', style, svg, count=1)


_TITLED = re.compile(r'<title>[^<]*</title>(\s*<g id="a_[^"]*"><a xlink:title="([^"]*)")')


def hover_titles(svg: str) -> str:
    """Each node's and edge's ``<title>`` (what a browser shows on hover) set to its tooltip
    rather than its internal DOT id."""
    return _TITLED.sub(lambda m: f"<title>{m.group(2)}</title>{m.group(1)}", svg)


def png_size(data: bytes) -> tuple | None:
    """``(width, height)`` in pixels of PNG bytes (None for anything else)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
