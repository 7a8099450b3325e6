"""DOT text -> pictures (SVG, PNG, PDF) from whichever Graphviz is installed.

Pictures come from the system ``dot`` when there is one, else from the ``graphviz-pure``
executable that ``pip install minigraph`` brings.  graphviz-pure writes no PDF: with the
``pdf`` extra (``pip install 'minigraph[pdf]'``: svglib and ReportLab) its SVG is converted
into a vector PDF; without it its JPEG (at 150 dpi) is wrapped in a one-page PDF, a raster
image (SVG is the vector format that always works).  With neither renderer,
:meth:`GraphPicture.save` writes the ``.dot`` file and says how to get a renderer.

Sizes (see :mod:`.sizing`): a picture is drawn at its natural size, a PNG at ``dpi``
(:data:`DEFAULT_DPI`); ``size`` fits it into W x H inches, never below a readable scale.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import MinigraphError
from .sizing import fit_scale, hover_titles, notebook_svg, scaled_svg, svg_size

FORMATS = ("svg", "png", "pdf", "dot")

# A PNG at 100%: Graphviz's own 96 dpi makes 12-pt names 16 px and 9-pt labels 12 px tall.
DEFAULT_DPI = 96
# ``rankdir="auto"`` keeps left-to-right while the picture fits a 1920-px screen at 96 dpi.
AUTO_WIDTH_PT = 1440
# What fitting (``size``) may shrink to: 72 dpi, where the 9-pt labels are still 9 px tall.
# A picture that would need less stays larger than asked (it is never made unreadable).
MIN_DPI = 72

NO_RENDERER = ("no Graphviz renderer found: wrote {dot}; install one with "
               "`pip install graphviz-pure` or your system's graphviz package")


def picture_format(path, fmt: str | None = None, default: str = "svg") -> str | None:
    """The format a picture is written in: ``fmt``, else ``path``'s suffix, else ``default``.

    ``gv`` is DOT.  None when that is not one of :data:`FORMATS`.
    """
    fmt = (fmt or Path(path).suffix.lstrip(".") or default).lower()
    fmt = "dot" if fmt == "gv" else fmt
    return fmt if fmt in FORMATS else None


# ==== renderers ===================================================================================

def find_renderer() -> list | None:
    """The command that turns DOT into pictures: system ``dot``, else ``graphviz-pure``."""
    dot = shutil.which("dot")
    if dot:
        return [dot]
    for name in ("graphviz-pure", "graphviz-pure.exe"):
        beside = Path(sys.executable).parent / name
        if beside.is_file() and os.access(beside, os.X_OK):
            return [str(beside)]
    pure = shutil.which("graphviz-pure")
    return [pure] if pure else None


def _is_pure(command: list) -> bool:
    return "graphviz-pure" in Path(command[0]).name


def pipe(source: str, fmt: str, renderer: list | None = None, dpi: float | None = None,
         scale: float = 1.0) -> bytes:
    """Run the renderer on DOT ``source``; returns the picture's bytes.

    ``dpi`` is a PNG's (and a raster PDF's) resolution; ``scale`` (at most 1) shrinks a PDF.
    """
    renderer = renderer or find_renderer()
    if renderer is None:
        raise MinigraphError(NO_RENDERER.format(dot="nothing (no output path)"))
    if fmt == "pdf" and _is_pure(renderer):
        vector = svg_pdf(pipe(source, "svg", renderer).decode("utf-8"), scale)
        return vector if vector is not None else jpeg_pdf(source, renderer, scale=scale)
    args = renderer + [f"-T{fmt}"] + ([f"-Gdpi={dpi:g}"] if dpi else [])
    if fmt == "pdf" and scale < 1.0:
        args.append(f"-Gsize={_pdf_size(source, renderer, scale)}")
    try:
        done = subprocess.run(args, input=source.encode("utf-8"), capture_output=True,
                              timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MinigraphError(f"{Path(renderer[0]).name} failed: {exc}") from None
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise MinigraphError(f"{Path(renderer[0]).name} -T{fmt} failed: "
                             f"{message[-1] if message else 'no output'}")
    return done.stdout


# ==== PDF from graphviz-pure's JPEG ===============================================================

def svg_pdf(svg: str, scale: float = 1.0) -> bytes | None:
    """A vector PDF of Graphviz's ``svg`` through svglib and ReportLab (the ``pdf`` extra);
    None when they are not installed."""
    try:
        from reportlab.graphics import renderPDF
        from svglib.svglib import svg2rlg
    except ImportError:
        return None
    drawing = svg2rlg(io.BytesIO(svg.encode("utf-8")))
    if drawing is None:
        raise MinigraphError("svglib could not read the renderer's SVG to make a PDF")
    if scale != 1.0:
        drawing.scale(scale, scale)
        drawing.width, drawing.height = drawing.width * scale, drawing.height * scale
    return renderPDF.drawToString(drawing)


def _pdf_size(source: str, renderer: list, scale: float) -> str:
    """Graphviz's ``size`` (inches) that shrinks the drawing by ``scale``."""
    width, height = svg_size(pipe(source, "svg", renderer).decode("utf-8"))
    return f"{width * scale / 72:.3f},{height * scale / 72:.3f}"


def jpeg_pdf(source: str, renderer: list, dpi: int = 150, scale: float = 1.0) -> bytes:
    """graphviz-pure writes no PDF: wrap its JPEG in a one-page PDF (raster, ``dpi``), its
    page ``scale`` times the drawing's natural size."""
    jpeg = pipe(source, "jpeg", renderer, dpi=dpi)
    width, height = jpeg_size(jpeg)
    w, h = width * 72 * scale / dpi, height * 72 * scale / dpi
    content = f"q {w:.2f} 0 0 {h:.2f} 0 0 cm /Im0 Do Q".encode()
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w:.2f} {h:.2f}] "
         "/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>").encode(),
        (f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} "
         f"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode "
         f"/Length {len(jpeg)} >>\nstream\n").encode() + jpeg + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
    ])


def _pdf(objects: list) -> bytes:
    """A PDF file of numbered ``objects`` (1, 2, ...), with its cross-reference table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n"
            "%%EOF\n").encode()
    return bytes(out)


def jpeg_size(data: bytes) -> tuple:
    """(width, height) from a JPEG's start-of-frame marker."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            return width, height
        i += 2 + length
    raise MinigraphError("could not read the size of graphviz-pure's JPEG output")


def target_format(path: Path, fmt: str | None) -> str:
    """The format to write ``path`` in; refused when unknown, when it contradicts the
    file's suffix (``-o x.svg --format png`` would put PNG bytes in a .svg) or when the
    folder is missing."""
    named = picture_format(path, default="")
    if fmt is not None and named is not None and picture_format(path, fmt) != named:
        raise MinigraphError(f"format {fmt} does not match the file name {path.name} "
                             f"(a .{path.suffix.lstrip('.')} file holds {named}): change "
                             "the suffix or leave out the format")
    fmt = picture_format(path, fmt)
    if fmt is None:
        raise MinigraphError(f"cannot tell the picture format from '{path}'; use a "
                             f"suffix or format among {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise MinigraphError(f"cannot write {path}: folder {path.parent} does not exist")
    return fmt


# ==== the picture =================================================================================

def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise MinigraphError(f"cannot write {path}: {exc.strerror or exc}") from None


class GraphPicture:
    """A drawn graph: ``.dot`` source, ``.save(path)``, and inline display in Jupyter.

    Pictures have their natural size: a PNG at ``dpi`` (:data:`DEFAULT_DPI`: text as it
    reads at 100%), SVG and PDF in points.  ``size`` ("W,H" inches) shrinks a picture to fit,
    never below :data:`~.sizing.MIN_SCALE` (the smallest labels stay readable).
    """

    def __init__(self, dot: str, name: str = "model"):
        self.dot = dot
        self.name = name
        self._svg: str | None = None

    def __repr__(self) -> str:
        return f"<GraphPicture of '{self.name}': {self.dot.count('->')} edges>"

    @property
    def source(self) -> str:
        return self.dot

    def natural_size(self) -> tuple:
        """``(width, height)`` of the drawing at 100%, in points (1/72 inch)."""
        return svg_size(self.svg())

    def scale_for(self, size=None) -> float:
        """How much ``size`` (``(W, H)`` inches, or None) shrinks this picture."""
        return fit_scale(self.natural_size(), size) if size is not None else 1.0

    def pipe(self, fmt: str = "svg", *, dpi: float | None = None, size=None) -> bytes:
        """The picture as bytes in ``fmt`` (svg, png, pdf) or the DOT text (dot).

        ``dpi``: a PNG's resolution (default :data:`DEFAULT_DPI`); ``size``: ``(W, H)``
        inches to fit in (see the class).
        """
        if fmt == "dot":
            return self.dot.encode("utf-8")
        if fmt not in FORMATS:
            raise MinigraphError(f"unknown picture format {fmt!r}; use one of "
                                 f"{', '.join(FORMATS)}")
        scale = self.scale_for(size)
        if fmt == "svg":
            return scaled_svg(self.svg(), scale).encode("utf-8")
        if fmt == "png":
            return pipe(self.dot, fmt, dpi=(dpi or DEFAULT_DPI) * scale)
        return pipe(self.dot, fmt, scale=scale)

    def svg(self, hover: bool = True) -> str:
        """The SVG at natural size; hovering a node or edge shows its tooltip -- or, with
        ``hover=False``, Graphviz's own titles, the DOT ids (the interactive page finds its
        elements by them and shows its own panel on hover)."""
        if self._svg is None:
            self._svg = pipe(self.dot, "svg").decode("utf-8")
        return hover_titles(self._svg) if hover else self._svg

    def save(self, path, format: str | None = None, *,  # noqa: A002 - the usual name
             dpi: float | None = None, size=None) -> Path:
        """Write the picture; the format comes from ``format`` or the file's suffix (they
        must agree when both are given).  ``dpi`` and ``size``: see :meth:`pipe`.

        With no renderer installed, writes the DOT text next to ``path`` (``.dot``) and
        raises a :class:`MinigraphError` that says how to install one.
        """
        path = Path(path)
        fmt = target_format(path, format)
        if fmt == "dot":
            _write(path, self.dot.encode("utf-8"))
            return path
        if find_renderer() is None:
            dot_path = path.with_suffix(".dot")
            _write(dot_path, self.dot.encode("utf-8"))
            raise MinigraphError(NO_RENDERER.format(dot=dot_path))
        _write(path, self.pipe(fmt, dpi=dpi, size=size))
        return path

    # -- Jupyter: as wide as the cell (never wider than 100%, nor narrower than readable) ----
    def _repr_svg_(self):
        try:
            return notebook_svg(self.svg())
        except MinigraphError:
            return None

    def _repr_mimebundle_(self, include=None, exclude=None):
        try:
            return {"image/svg+xml": notebook_svg(self.svg()), "text/plain": repr(self)}
        except MinigraphError as exc:
            return {"text/plain": f"{exc}\n\n{self.dot}"}


def auto_picture(make, name: str = "model") -> GraphPicture:
    """The picture of ``make(rankdir)`` (DOT text) in the direction that reads best.

    Left to right while that fits a screen's width (:data:`AUTO_WIDTH_PT`); a longer chain,
    such as a deep model or one drawn with its values, is drawn top to bottom when that is
    narrower (it then scrolls down, as a page does, rather than sideways).  Without a
    renderer nothing can be measured: left to right.
    """
    wide = GraphPicture(make("LR"), name)
    if find_renderer() is None or wide.natural_size()[0] <= AUTO_WIDTH_PT:
        return wide
    tall = GraphPicture(make("TB"), name)
    return tall if tall.natural_size()[0] < wide.natural_size()[0] else wide
