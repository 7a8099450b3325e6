"""DOT text -> pictures (SVG, PNG, PDF) from whichever Graphviz is installed.

Pictures come from the system ``dot`` when there is one, else from the ``graphviz-pure``
executable that ``pip install minigraph`` brings (it writes no PDF: its JPEG is wrapped in a
one-page PDF here).  With neither, :meth:`GraphPicture.save` writes the ``.dot`` file and says
how to get a renderer.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import MinigraphError

FORMATS = ("svg", "png", "pdf", "dot")

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


def pipe(source: str, fmt: str, renderer: list | None = None, dpi: int | None = None) -> bytes:
    """Run the renderer on DOT ``source``; returns the picture's bytes."""
    renderer = renderer or find_renderer()
    if renderer is None:
        raise MinigraphError(NO_RENDERER.format(dot="nothing (no output path)"))
    if fmt == "pdf" and _is_pure(renderer):
        return jpeg_pdf(source, renderer)
    args = renderer + [f"-T{fmt}"] + ([f"-Gdpi={dpi}"] if dpi else [])
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

def jpeg_pdf(source: str, renderer: list, dpi: int = 150) -> bytes:
    """graphviz-pure writes no PDF: wrap its JPEG in a one-page PDF (raster, ``dpi``)."""
    jpeg = pipe(source, "jpeg", renderer, dpi=dpi)
    width, height = jpeg_size(jpeg)
    w, h = width * 72 / dpi, height * 72 / dpi
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


def _target_format(path: Path, fmt: str | None) -> str:
    """The format to write ``path`` in; refused when unknown or when its folder is missing."""
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
    """A drawn graph: ``.dot`` source, ``.save(path)``, and inline display in Jupyter."""

    def __init__(self, dot: str, name: str = "model"):
        self.dot = dot
        self.name = name
        self._svg: str | None = None

    def __repr__(self) -> str:
        return f"<GraphPicture of '{self.name}': {self.dot.count('->')} edges>"

    @property
    def source(self) -> str:
        return self.dot

    def pipe(self, fmt: str = "svg") -> bytes:
        """The picture as bytes in ``fmt`` (svg, png, pdf) or the DOT text (dot)."""
        if fmt == "dot":
            return self.dot.encode("utf-8")
        if fmt not in FORMATS:
            raise MinigraphError(f"unknown picture format {fmt!r}; use one of "
                                 f"{', '.join(FORMATS)}")
        return pipe(self.dot, fmt)

    def svg(self) -> str:
        if self._svg is None:
            self._svg = self.pipe("svg").decode("utf-8")
        return self._svg

    def save(self, path, format: str | None = None) -> Path:  # noqa: A002 - the usual name
        """Write the picture; the format comes from ``format`` or the file's suffix.

        With no renderer installed, writes the DOT text next to ``path`` (``.dot``) and
        raises a :class:`MinigraphError` that says how to install one.
        """
        path = Path(path)
        fmt = _target_format(path, format)
        if fmt == "dot":
            _write(path, self.dot.encode("utf-8"))
            return path
        if find_renderer() is None:
            dot_path = path.with_suffix(".dot")
            _write(dot_path, self.dot.encode("utf-8"))
            raise MinigraphError(NO_RENDERER.format(dot=dot_path))
        _write(path, self.pipe(fmt))
        return path

    # -- Jupyter ----------------------------------------------------------------------------
    def _repr_svg_(self):
        try:
            return self.svg()
        except MinigraphError:
            return None

    def _repr_mimebundle_(self, include=None, exclude=None):
        try:
            return {"image/svg+xml": self.svg(), "text/plain": repr(self)}
        except MinigraphError as exc:
            return {"text/plain": f"{exc}\n\n{self.dot}"}
