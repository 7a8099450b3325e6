"""Plain-text tables for the command line.  Data in, text out; no printing here."""
from __future__ import annotations

import numpy as np


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


def summary_text(graph) -> str:
    from .inspect import summary_rows

    rows = summary_rows(graph)
    body = table(["node", "op", "inputs", "output", "shape", "params"],
                 [[r.node, r.op, r.inputs, r.output, r.shape, f"{r.params:,}"] for r in rows],
                 "lllllr")
    head = f"model {graph.name}: {len(graph.nodes)} nodes, {graph.param_count():,} params"
    if graph.spec.description:
        head += "\n" + graph.spec.description.strip()
    return head + "\n\n" + body


def ops_text(infos) -> str:
    rows = [[i.name + (" (layer)" if i.layer else ""), i.inputs, i.attrs or "-", i.doc]
            for i in infos]
    return table(["op", "inputs", "attributes", "what it does"], rows)


def check_text(result) -> str:
    from .inspect import shape_rows

    graph = result.graph
    parts = [f"{graph.spec.doc.file if graph.spec.doc else graph.name}: valid model "
             f"'{graph.name}' ({len(graph.nodes)} nodes, {graph.param_count():,} params)", "",
             table(["tensor", "kind", "shape", "dtype"], shape_rows(graph)), ""]
    if not result.grads:
        parts.append(result.feeds_from)
        return "\n".join(parts)
    parts.append(f"gradient check (float64 central differences on {result.feeds_from}):")
    parts.append(table(
        ["param", "shape", "checked", "max abs err", "max rel err", "result"],
        [[r.param, str(tuple(r.shape)), r.checked, f"{r.max_abs:.2e}", f"{r.max_rel:.2e}",
          "ok" if r.ok else "MISMATCH"] for r in result.grads], "llrrrl"))
    parts.append("all gradients match" if result.ok else "gradient check FAILED")
    return "\n".join(parts)


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
    if a.ndim == 0:
        return [format_number(a.item(), precision)]
    cells = [format_number(x, precision) for x in a.ravel().tolist()]
    flat = _nested(cells, a.shape, width=len(cells))
    single = " ".join(line.strip() for line in flat) if len(flat) > 1 else flat[0]
    if len(single) <= one_line:
        return [single]
    pad = max(len(c) for c in cells)
    lines = _nested([c.rjust(pad) for c in cells], a.shape, width=6)
    if a.shape[-1] == 1:  # a column such as (10, 1): several rows to a line
        packed = [lines[0]]
        for line in lines[1:]:
            if len(packed[-1]) + len(line.strip()) + 1 <= one_line:
                packed[-1] += " " + line.strip()
            else:
                packed.append(line)
        lines = packed
    return lines


def format_array(a, precision: int = 4, max_elements: int = 16, indent: str = "    ") -> str:
    """A tensor for the terminal: in full when small, else statistics (see format_lines)."""
    return ("\n" + indent).join(format_lines(a, precision, max_elements))


def _metric_text(record: dict) -> str:
    keys = [k for k in record if k not in ("epoch", "lr", "seconds")]
    return "  ".join(f"{k} {record[k]:.4g}" for k in keys)


class Progress:
    """Epoch progress for ``minigraph run``: a tqdm bar on a terminal, else a line now and then.

    Called with each epoch's record.  Quiet when asked, and a plain log line every
    ``log_every`` epochs when standard error is not a terminal.
    """

    def __init__(self, quiet=False, total=None, log_every=None):
        import sys

        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.total = total
        self.log_every = log_every
        self.bar = None

    def begin(self, total, start=0, log_every=None):
        """Told by ``run_model`` before the first epoch: how many epochs, from where."""
        self.total, self.start = total, start
        self.log_every = self.log_every or log_every

    def __call__(self, record):
        import sys

        if self.quiet:
            return
        if self.tty:
            from tqdm import tqdm

            if self.bar is None:
                self.bar = tqdm(total=self.total, unit="epoch", dynamic_ncols=True,
                                initial=record["epoch"] - 1, file=sys.stderr)
            self.bar.set_postfix_str(_metric_text(record), refresh=False)
            self.bar.update(1)
            return
        every = self.log_every or max(1, (self.total or 10) // 10)
        if record["epoch"] % every == 0 or record["epoch"] == self.total or record["epoch"] == 1:
            print(f"epoch {record['epoch']}: {_metric_text(record)}", file=sys.stderr,
                  flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _io_table(result) -> str:
    graph, values = result.graph, result.table
    names = list(graph.inputs) + [t for t in graph.outputs if t not in graph.inputs]
    # one row per example; a scalar (0-d) value is the same on every row
    n = max((len(values[k]) for k in names if np.ndim(values[k]) > 0), default=1)
    rows = []
    for i in range(n):
        rows.append([" ".join(format_lines(values[k] if np.ndim(values[k]) == 0
                                           else values[k][i])) for k in names])
    return table(names, rows)


def run_text(result) -> str:
    """The final summary of ``minigraph run``."""
    graph = result.graph
    lines = []
    if result.history is None:
        lines.append(f"model {graph.name}: one forward pass (no train section)")
        for name, value in result.outputs.items():
            lines.append(f"  {name} = {format_array(value)}")
        if result.loss is not None:
            lines.append(f"  loss {graph.loss} = {result.loss:.6g}")
            for name, g in result.grads.items():
                lines.append(f"  d{graph.loss}/d{name} = {format_array(g)}")
    else:
        h = result.history
        last = h.last
        status = "interrupted" if h.interrupted else (
            "stopped early (target reached)" if h.stopped_early else "done")
        lines.append(f"model {graph.name}: trained {last.get('epoch', 0)} epochs ({status})")
        if last:
            lines.append("  " + _metric_text(last))
        if result.saved:
            lines.append(f"  saved params and training state to {result.saved}")
    if result.table:
        lines += ["", _io_table(result)]
    return "\n".join(lines)


def eval_text(result: dict) -> str:
    keys = [k for k in result if k not in ("split", "examples")]
    return (f"{result['split']} data ({result['examples']} examples): "
            + "  ".join(f"{k} {result[k]:.4g}" for k in keys))
