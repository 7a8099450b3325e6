"""What the commands print, as text: results in, text out.  Nothing is printed here.

The rows come from :mod:`minigraph.introspect` and :mod:`minigraph.api`; the formatting of
numbers, tensors and tables from :mod:`minigraph.text`.
"""
from __future__ import annotations

import textwrap

import numpy as np

from minigraph.backend import to_numpy
from minigraph.text import format_array, format_lines, format_number, table


def summary_text(summary) -> str:
    """``minigraph summary``: a :class:`~minigraph.introspect.Summary` as a table and a footer.

    One row per written node; a layer op's primitives (``--expand``) are indented below it,
    their params in brackets (already counted on the layer's row).  A param read by several
    nodes is counted once, where it is first read; later rows name it as shared.
    """
    rows = []
    for r in summary.rows:
        count = f"{r.params:,}" if r.depth == 0 else f"({r.params:,})"
        if r.shared:
            count = f"{r.params:,} + shared {', '.join(r.shared)}"
        rows.append(["  " * r.depth + r.node, r.op, r.inputs, r.output, r.shape, count])
    body = table(["node", "op", "inputs", "output", "shape", "params"], rows, "lllllr")
    written = f" ({summary.layers} as written)" if summary.layers != summary.nodes else ""
    head = (f"model {summary.name}: {summary.nodes} nodes{written}, {summary.params:,} params "
            f"in {summary.tensors} tensors")
    if summary.description:
        head += "\n" + summary.description.strip()
    rule = "=" * max(len(line) for line in body.splitlines())
    foot = [f"Total params:         {summary.params:,} (in {summary.tensors} tensors, each "
            "counted once)",
            f"Trainable params:     {summary.trainable:,}",
            f"Non-trainable params: {summary.params - summary.trainable:,}"]
    if summary.constants:
        foot.append(f"Constants:            {summary.constants:,} values (never trained)")
    return head + "\n\n" + body + "\n" + rule + "\n" + "\n".join(foot)


def ops_text(infos, width: int = 100) -> str:
    """``minigraph ops``: one row per :class:`~minigraph.introspect.OpInfo`, the inputs, the
    attributes and the doc wrapped so that no line is wider than ``width`` (the terminal's)."""
    rows = [[i.name + (" (layer)" if i.layer else ""), i.inputs, i.attrs or "-", i.doc]
            for i in infos]
    name_w = max(len("op"), *(len(r[0]) for r in rows))
    ins = _wrap_lists([r[1] for r in rows], 20)
    room = max(width - name_w - max(len(line) for a in ins for line in a) - 6, 30)
    attrs = _wrap_lists([r[2] for r in rows], room // 3)
    doc_w = max(room - max(len(line) for a in attrs for line in a), 12)
    lines = []
    for (name, _, _, doc), i, a in zip(rows, ins, attrs):
        d = textwrap.wrap(doc, doc_w) or [""]
        for k in range(max(len(i), len(a), len(d))):
            lines.append([name if k == 0 else "", i[k] if k < len(i) else "",
                          a[k] if k < len(a) else "", d[k] if k < len(d) else ""])
    return table(["op", "inputs", "attributes", "what it does"], lines) + \
        "\n\n'minigraph ops NAME' shows one op in full."


def _wrap_lists(texts, at_most: int) -> list:
    """Each comma-separated list wrapped to one width for all: the longest list's length up
    to ``at_most``, but never cutting an item."""
    longest = max(len(item) for t in texts for item in t.split(", "))
    w = max(min(max(len(t) for t in texts), at_most), longest)
    return [textwrap.wrap(t, w, break_long_words=False) or [""] for t in texts]


def op_doc_text(doc, width: int = 100) -> str:
    """``minigraph ops NAME``: one op's inputs, attributes with their docs, and whole doc."""
    kind = "layer op" if doc.layer else "op"
    parts = [f"{doc.name} ({kind}): inputs {doc.inputs or '-'}", ""]
    for para in doc.doc.split("\n\n"):
        parts += textwrap.wrap(" ".join(para.split()), width) + [""]
    if doc.attrs:
        parts.append("attributes:")
        for name, default, text in doc.attrs:
            parts += textwrap.wrap(f"{name} ({default}): {text}", width,
                                   initial_indent="  ", subsequent_indent="      ")
    else:
        parts.append("attributes: none")
    return "\n".join(parts).rstrip()


def check_text(report) -> str:
    """``minigraph check``: a :class:`~minigraph.introspect.CheckReport` as text."""
    graph = report.graph
    parts = [f"{report.source}: valid model '{graph.name}' ({len(graph.nodes)} nodes, "
             f"{graph.param_count():,} params)", "",
             table(["tensor", "kind", "shape", "dtype"], report.shapes), ""]
    if not report.grads:
        parts.append(report.feeds_from)
        return "\n".join(parts)
    parts.append(f"gradient check (float64 central differences on {report.feeds_from}):")
    parts.append(table(
        ["param", "shape", "checked", "max abs err", "max rel err", "result"],
        [[r.param, str(tuple(r.shape)), _checked(r), f"{r.max_abs:.2e}", f"{r.max_rel:.2e}",
          "ok" if r.ok else "MISMATCH"] for r in report.grads], "llrrrl"))
    if any(r.checked < r.size for r in report.grads):
        parts.append("(a seeded sample of each param's elements, up to 20, and one random "
                     "direction through all of them; --full perturbs every element)")
    parts.append("all gradients match" if report.ok else "gradient check FAILED")
    return "\n".join(parts)


def _checked(row) -> str:
    """``20 of 64`` for a sampled param, ``4`` when every element was perturbed."""
    if row.param.startswith("("):
        return f"{row.size:,} along 1 direction"
    if row.size and row.checked < row.size:
        return f"{row.checked:,} of {row.size:,}"
    return f"{row.checked:,}"


def metric_text(record: dict) -> str:
    """An epoch's loss and metrics: ``loss 0.6931  accuracy 0.5``."""
    keys = [k for k in record if k not in ("epoch", "lr", "seconds")]
    return "  ".join(f"{k} {record[k]:.4g}" for k in keys)


def plural(n: int, word: str) -> str:
    """``1 epoch``, ``5 epochs``, ``1,000 examples``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def seconds_text(seconds: float) -> str:
    """``0.21 ms``, ``35 ms``, ``2.4 s``."""
    if seconds < 0.01:
        return f"{seconds * 1e3:.2g} ms"
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.3g} s"


def epoch_text(record: dict, total: int | None = None) -> str:
    """One epoch line: ``epoch 3/100: loss 0.375  accuracy 0.75  lr 0.4  (0.21 ms)``."""
    of = f"/{total}" if total else ""
    line = f"epoch {record['epoch']}{of}: {metric_text(record)}"
    if record.get("lr") is not None:
        line += f"  lr {record['lr']:.4g}"
    if record.get("seconds") is not None:
        line += f"  ({seconds_text(record['seconds'])})"
    return line


def start_text(trainer, total: int, start: int = 0) -> str:
    """The line a run starts with: model, params, data, batches, optimizer, epochs, backend."""
    from minigraph.data import num_examples

    graph, config = trainer.graph, trainer.config
    n = num_examples(trainer.train_data) if trainer.train_data else 0
    data = f"{plural(n, 'training example')}" if graph.inputs else "no data (params only)"
    if trainer.test_data:
        data += f", {num_examples(trainer.test_data):,} test"
    batch = f"batch {config.batch_size}" if config.batch_size and config.batch_size < n \
        else "full batch"
    optimizer = dict(config.optimizer)
    kind = optimizer.pop("type", "sgd")
    options = " ".join(f"{k} {format_number(v) if isinstance(v, (int, float)) else v}"
                       for k, v in optimizer.items())
    schedule = f", {config.schedule['type']} schedule" \
        if isinstance(config.schedule, dict) and "type" in config.schedule else ""
    epochs = f"epochs {start + 1}-{total}" if start else plural(total, "epoch")
    return (f"training {graph.name}: {plural(graph.param_count(), 'param')}, {data}, {batch}, "
            f"{kind} {options}{schedule}, {epochs}, on {trainer.backend.name}")


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


def _forward_lines(result) -> list:
    """A forward-only run: its outputs, and with a loss the loss and its gradients."""
    graph = result.graph
    lines = [f"model {graph.name}: one forward pass (no train section)"]
    for name, value in result.outputs.items():
        lines.append(f"  {name} = {format_array(value)}{_loss_mark(graph, name)}")
    if result.loss is not None:
        if graph.loss not in result.outputs:
            lines.append(f"  {graph.loss} = {result.loss:.6g}{_loss_mark(graph, graph.loss)}")
        for name, g in result.grads.items():
            lines.append(f"  d{graph.loss}/d{name} = {format_array(g)}")
    return lines


def _loss_mark(graph, name: str) -> str:
    """`` (the loss)`` after the loss's value, unless its name says so already."""
    return " (the loss)" if name == graph.loss and name != "loss" else ""


def _training_lines(result) -> list:
    """A training run: how far it got and how it ended, its last record, its trained params,
    where it saved."""
    h = result.history
    last = h.last
    status = "interrupted" if h.interrupted else (
        f"stopped early: {h.stop_reason or 'target reached'}" if h.stopped_early else "done")
    lines = [f"model {result.graph.name}: trained {plural(last.get('epoch', 0), 'epoch')} "
             f"({status})"]
    if last:
        lines.append("  " + metric_text(last))
    if h.restored_epoch is not None:
        lines.append(f"  params restored from epoch {h.restored_epoch}, the best")
    if result.trainer is not None and result.trainer.params:
        lines += ["", "trained params:"] + params_lines(result.trainer.params, result.graph)
    if result.saved:
        lines.append(f"  saved params and training state to {result.saved}")
    return lines


def params_lines(params: dict, graph, small: int = 20) -> list:
    """Each param by name: its values when it has at most ``small`` of them, else its shape
    and statistics (``mean``, ``std``, ``min``, ``max``)."""
    lines = []
    for name in graph.params:
        value = np.asarray(to_numpy(params[name]))
        if value.size <= small:
            text = "\n    ".join(format_lines(value, max_elements=small))
            lines.append(f"  {name} = {text}")
        else:
            lines.append(f"  {name} {tuple(value.shape)}: "
                         f"{'  '.join(format_lines(value, max_elements=small))}")
    return lines


def run_text(result) -> str:
    """The final summary of ``minigraph run``."""
    lines = _forward_lines(result) if result.history is None else _training_lines(result)
    if result.table:
        lines += ["", _io_table(result)]
    return "\n".join(lines)


def interrupted_text(result) -> str:
    """The one line a Ctrl-C'd run ends with: which epoch was saved, and how to go on."""
    epoch = result.epoch or 0
    where = f"after epoch {epoch}" if epoch else "before the first epoch ended"
    if result.saved:
        return (f"interrupted (Ctrl-C) {where}: saved the state at epoch {epoch} to "
                f"{result.saved}; continue with --load {result.saved}")
    return f"interrupted (Ctrl-C) {where}: nothing saved (use --save to keep the state)"


def eval_text(result: dict) -> str:
    """``minigraph eval``: the split, its size, the loss and the metrics."""
    keys = [k for k in result if k not in ("split", "examples")]
    return (f"{result['split']} data ({result['examples']} examples): "
            + "  ".join(f"{k} {result[k]:.4g}" for k in keys))
