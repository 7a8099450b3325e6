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
