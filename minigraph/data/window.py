"""The ``window`` option: a time series cut into sliding windows for a recurrent network.

::

    data:
      train:
        file: seattle-weather.csv          # or generator: sine / drive
        window: {size: 20, horizon: 1, stride: 1, features: [temp_max, wind],
                 target: [temp_max], standardize: true}
        test_fraction: 0.2                 # with a window: the LAST 20% of the steps

The source gives a table of steps (a CSV file's named columns, or a series generator's).
Window k holds ``size`` consecutive steps of the ``features`` columns -- ``x`` of shape
``(N, size, F)`` -- and its target is the ``target`` columns ``horizon`` steps after the
window's last step -- ``t`` of shape ``(N, len(target))``; windows start every ``stride``
steps.  ``names: [x, t]`` says which model inputs get them (default: the first two).

``test_fraction`` splits **by time**: the series is cut once, the first part gives the
training windows and the rest the test windows, so no window, and no target, crosses the
cut (no leakage from the future).  ``standardize: true`` scales every column to mean 0 and
standard deviation 1 using the training part's statistics only.

When the targets are among the features, the split's *persistence* forecast ("the next step
equals the last one seen") is scored too: the run reports ``persistence_mse`` (and
``test_persistence_mse``) beside the model's loss, the baseline a forecaster must beat.
"""
from __future__ import annotations

import csv
import io

import numpy as np

from .. import limits
from ..errors import did_you_mean
from ..limits import short
from ..options import Option
from . import files, kinds, series
from .context import NAMES, SplitContext, show_path

WINDOW = {
    "size": Option("int", doc="steps in one window (T)", convert=kinds.count),
    "horizon": Option("int", 1, "how far after the window's last step the target is",
                      convert=kinds.count),
    "stride": Option("int", 1, "steps between the starts of two windows", convert=kinds.count),
    "features": Option("list", None, "the columns a window holds (default: all)",
                       convert=kinds.as_written),
    "target": Option("list", None, "the columns to predict (default: the features)",
                     convert=kinds.as_written),
    "standardize": Option("bool", False, "scale each column by the training part's mean and "
                                         "standard deviation", convert=kinds.flag),
}


# ==== the table of steps ==========================================================================

def series_table(ctx: SplitContext, source) -> tuple:
    """``(column names, float64 table (steps, columns))`` of a windowed source."""
    extra = {"window": Option("any", convert=kinds.as_written), "names": NAMES}
    if "generator" in source:
        name = source["generator"]
        if not isinstance(name, str) or name not in series.SERIES:
            raise ctx.model_error(f"a window needs a time series: generator {short(name)} is "
                                  f"not one{did_you_mean(str(name), series.SERIES)}; series: "
                                  f"{', '.join(series.SERIES)}", "generator")
        make, columns, declared = series.SERIES[name]
        values = ctx.check_source(source, {"generator": Option("any", convert=kinds.as_written),
                                           **extra, **declared})
        options = {k: values[k] for k in declared}
        if options["n"] > limits.MAX_GENERATED:
            raise ctx.model_error(f"generator {name}: {options['n']:,} steps, more than the "
                                  f"limit of {limits.MAX_GENERATED:,}", "n")
        try:
            return list(columns), make(**options)
        except ValueError as exc:
            raise ctx.model_error(f"generator {name}: {exc}", "generator") from None
    if "file" in source:
        ctx.check_source(source, {"file": files.OPTIONS["file"],
                                  "delimiter": files.OPTIONS["delimiter"], **extra})
        path = files._path(ctx, source["file"])
        delimiter = ctx.value(source, "delimiter", files.DELIMITER) or \
            ("\t" if path.suffix.lower() == ".tsv" else ",")
        with files._open_data_file(ctx, path, limits.MAX_CSV_BYTES) as (handle, size):
            return _read_columns(ctx, path, handle.read(size + 1), delimiter,
                                 _wanted(ctx, source))
    raise ctx.model_error(f"a window cuts a CSV file or a series generator "
                          f"({', '.join(series.SERIES)}) into windows", "window")


def _wanted(ctx, source) -> list | None:
    """The columns the window reads (features and target), or None for every column."""
    window = source.get("window")
    if not isinstance(window, dict) or window.get("features") is None:
        return None
    names = list(window["features"]) + list(window.get("target") or [])
    return list(dict.fromkeys(n for n in names if isinstance(n, str)))


def _read_columns(ctx, path, raw: bytes, delimiter, wanted):
    """A CSV file with a header row; the ``wanted`` columns (default: all) as numbers.

    Other columns (a date, a label) may hold text: only the wanted ones must be numbers.
    """
    shown = show_path(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ctx.data_error(f"{shown}: not UTF-8 text; save the file as UTF-8", "file") from None
    rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            if any(c.strip() for c in r) and not r[0].strip().startswith("#")]
    if len(rows) < 2:
        raise ctx.data_error(f"{shown}: a windowed file needs a header row and rows of data",
                             "file")
    header = [c.strip() for c in rows[0]]
    wanted = wanted or header
    for name in wanted:
        if name not in header:
            raise ctx.data_error(f"{shown} has no column {short(name)}"
                                 f"{did_you_mean(name, header)}; columns: {', '.join(header)}",
                                 "window")
    index = [header.index(n) for n in wanted]
    table = np.empty((len(rows) - 1, len(index)))
    for k, row in enumerate(rows[1:]):
        try:
            table[k] = [float(row[i]) for i in index]
        except (ValueError, IndexError):
            raise ctx.data_error(f"{shown}: row {k + 2} has no number in column(s) "
                                 f"{', '.join(wanted)}", "file") from None
    return wanted, table


# ==== windows =====================================================================================

def _columns(ctx, header, given, what):
    if given is None:
        return list(range(len(header)))
    if not given:
        raise ctx.model_error(f"{ctx.where()}.window.{what} must list at least one column",
                              "window", what)
    out = []
    for c in given:
        if isinstance(c, str) and c in header:
            out.append(header.index(c))
        elif isinstance(c, int) and not isinstance(c, bool) and -len(header) <= c < len(header):
            out.append(c % len(header))
        else:
            raise ctx.data_error(f"{ctx.where()}.window.{what}: no column {short(c)}"
                                 f"{did_you_mean(str(c), header)}; columns: "
                                 f"{', '.join(header)}", "window", what)
    return out


def windows(table, features, target, size, horizon, stride):
    """``x (N, size, F)`` and ``t (N, k)``: every window that has its target in ``table``."""
    last = len(table) - horizon  # the last step whose target exists, + 1
    starts = np.arange(0, last - size + 1, stride)
    x = np.stack([table[s:s + size][:, features] for s in starts]) if len(starts) else None
    t = table[starts + size - 1 + horizon][:, target] if len(starts) else None
    return x, t


def load_windowed(ctx: SplitContext, source) -> tuple:
    """``(train arrays, test arrays or None, baselines)`` of a source with a ``window``."""
    window = source["window"]
    if not isinstance(window, dict):
        raise ctx.model_error(f"{ctx.where()}.window must be a mapping like {{size: 20}}",
                              "window")
    opts = ctx.check(window, WINDOW, f"{ctx.where()}.window", "window")
    header, table = series_table(ctx, source)
    if "split_seed" in source:
        raise ctx.model_error("a window splits by time (test_fraction takes the last steps): "
                              "split_seed does not apply", "split_seed")
    features = _columns(ctx, header, opts["features"], "features")
    target = _columns(ctx, header, opts["target"] if opts["target"] is not None
                      else opts["features"], "target")
    fraction = ctx.options.get("test_fraction")
    if fraction is not None and not 0 < fraction < 1:
        raise ctx.model_error(f"{ctx.where()}.test_fraction must be between 0 and 1 "
                              f"(exclusive), not {fraction}", "test_fraction")
    cut = len(table) - int(round(len(table) * fraction)) if fraction else len(table)
    if opts["standardize"]:
        mean, std = table[:cut].mean(axis=0), table[:cut].std(axis=0)
        table = (table - mean) / np.where(std > 0, std, 1.0)
    count = max(0, (len(table) - opts["horizon"] - opts["size"]) // opts["stride"] + 1)
    if count * opts["size"] * len(features) > limits.MAX_ELEMENTS:
        raise ctx.model_error(f"{ctx.where()}.window: {count:,} windows of {opts['size']:,} "
                              f"steps x {len(features)} features would hold more than the "
                              f"limit of {limits.MAX_ELEMENTS:,} numbers", "window", "size")
    names = ctx.names(source)
    parts, baselines = [], {}
    for part, rows in (("", table[:cut]), ("test_", table[cut:] if fraction else None)):
        if rows is None:
            parts.append(None)
            continue
        x, t = windows(rows, features, target, opts["size"], opts["horizon"], opts["stride"])
        if x is None:
            raise ctx.data_error(f"{ctx.where()}: {len(rows)} steps"
                                 f"{' in the test part' if part else ''} give no window of "
                                 f"{opts['size']} steps with a target {opts['horizon']} "
                                 f"step(s) later", "window", "size")
        parts.append({names[0]: x, **({names[1]: t} if len(names) > 1 else {})})
        if set(target) <= set(features):  # persistence: the next step = the last one seen
            last = x[:, -1][:, [features.index(c) for c in target]]
            baselines[f"{part}persistence_mse"] = float(np.mean((last - t) ** 2))
    return parts[0], parts[1], baselines


__all__ = ["WINDOW", "load_windowed", "series_table", "windows"]
