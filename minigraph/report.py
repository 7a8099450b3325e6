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


def format_array(a, precision: int = 4, max_elements: int = 16) -> str:
    """Small arrays in full; larger ones as shape and statistics."""
    a = np.asarray(a)
    if a.size <= max_elements:
        if a.dtype.kind in "iub":
            return np.array2string(a, separator=", ")
        return np.array2string(a, precision=precision, separator=", ", suppress_small=True,
                               floatmode="maxprec")
    a64 = a.astype(np.float64)
    return (f"shape {a.shape} mean {a64.mean():.{precision}g} std {a64.std():.{precision}g} "
            f"min {a64.min():.{precision}g} max {a64.max():.{precision}g}")


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

    def __call__(self, record):
        import sys

        if self.quiet:
            return
        if self.tty:
            from tqdm import tqdm

            if self.bar is None:
                self.bar = tqdm(total=self.total, unit="epoch", dynamic_ncols=True,
                                initial=record["epoch"] - 1)
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
    rows = []
    n = len(next(iter(values.values())))
    for i in range(n):
        rows.append([np.array2string(np.asarray(values[k][i]), precision=4, separator=", ",
                                     suppress_small=True) for k in names])
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
