"""Numbers, shapes, tensors and tables as plain text.  Data in, text out; nothing printed.

The ground floor of presentation: ops quote shapes with :func:`fmt_shape`, the drawings in
``render/`` write values with :func:`format_lines`, and the command line builds its tables
with :func:`table`.
"""
from __future__ import annotations

import numpy as np


def fmt_shape(shape) -> str:
    """``(batch, 784)``-style text for a shape."""
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def table(headers, rows, align=None) -> str:
    """A fixed-width text table; ``align`` is a string of 'l'/'r' per column."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    align = align or "l" * len(headers)

    def line(cells):
        return "  ".join(c.rjust(w) if a == "r" else c.ljust(w)
                         for c, w, a in zip(cells, widths, align)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule] + [line(r) for r in rows])


def format_number(x, precision: int = 4) -> str:
    """``5``, ``-2``, ``0.1235``, ``1e-08``, ``nan``: short, with no trailing ``.``."""
    if isinstance(x, (bool, np.bool_)):
        return str(int(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    text = f"{float(x):.{precision}g}"
    return "0" if text == "-0" else text


def _nested(cells: list, shape: tuple, width: int) -> list:
    """Cells (already padded) as numpy-like nested brackets, one line per innermost row."""
    if len(shape) == 1:
        rows = [", ".join(cells[i:i + width]) for i in range(0, len(cells), width)] or [""]
        lines = ["[" + rows[0]] + [" " + r for r in rows[1:]]
        lines = [line + ("," if i < len(lines) - 1 else "]") for i, line in enumerate(lines)]
        return lines
    step = len(cells) // shape[0] if shape[0] else 0
    lines = []
    for i in range(shape[0]):
        block = _nested(cells[i * step:(i + 1) * step], shape[1:], width)
        if i < shape[0] - 1:
            block[-1] += ","
        lines += block
    if not lines:
        return ["[]"]
    lines = ["[" + lines[0]] + [" " + line for line in lines[1:]]
    lines[-1] += "]"
    return lines


def _statistics(a, precision: int) -> list:
    """``mean``, ``std``, ``min`` and ``max`` over the finite values, and a count of the rest."""
    a64 = a.astype(np.float64)
    finite = a64[np.isfinite(a64)]
    f = lambda x: format_number(x, precision)  # noqa: E731
    if finite.size:
        lines = [f"mean {f(finite.mean())}  std {f(finite.std())}",
                 f"min {f(finite.min())}  max {f(finite.max())}"]
    else:
        lines = []
    bad = a.size - finite.size
    if bad:
        lines.append(f"{bad} of {a.size} are NaN or inf")
    return lines


def _pack_column(lines: list, one_line: int) -> list:
    """A column such as (10, 1): several of its one-entry rows to a line."""
    packed = [lines[0]]
    for line in lines[1:]:
        if len(packed[-1]) + len(line.strip()) + 1 <= one_line:
            packed[-1] += " " + line.strip()
        else:
            packed.append(line)
    return packed


def format_lines(a, precision: int = 4, max_elements: int = 16, one_line: int = 44) -> list:
    """A tensor as short lines of text: in full up to ``max_elements``, else statistics.

    Small tensors print like NumPy with aligned columns (on one line when it is short);
    larger ones as ``mean``, ``std``, ``min`` and ``max`` (over the finite values, with a
    count of NaN and infinite entries when there are any).
    """
    a = np.asarray(a)
    if a.size == 0:
        return ["(empty)"]
    if a.size > max_elements:
        return _statistics(a, precision)
    if a.ndim == 0:
        return [format_number(a.item(), precision)]
    cells = [format_number(x, precision) for x in a.ravel().tolist()]
    flat = _nested(cells, a.shape, width=len(cells))
    single = " ".join(line.strip() for line in flat) if len(flat) > 1 else flat[0]
    if len(single) <= one_line:
        return [single]
    pad = max(len(c) for c in cells)
    lines = _nested([c.rjust(pad) for c in cells], a.shape, width=6)
    return _pack_column(lines, one_line) if a.shape[-1] == 1 else lines


def format_array(a, precision: int = 4, max_elements: int = 16, indent: str = "    ") -> str:
    """A tensor for the terminal: in full when small, else statistics (see format_lines)."""
    return ("\n" + indent).join(format_lines(a, precision, max_elements))
