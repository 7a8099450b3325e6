"""The ``file`` source: a CSV (or TSV) table, one .npy array, or an .npz archive of arrays.

Every file is opened the same guarded way (a regular file of bounded size, every failure
located at ``file``); a .npy header is checked before its data is read, a CSV file is read as
numbers with an optional header row, and a table is cut into inputs by ``columns`` or by the
default rule (all columns but the last, then the last).
"""
from __future__ import annotations

import array as pyarray
import contextlib
import csv
import io
import math
import os
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .. import limits
from ..errors import did_you_mean, known
from ..limits import short
from ..options import Option
from . import kinds
from .context import NAMES, SplitContext, show_path

_BAD_DELIMITERS = "\"\r\n\0"


def _delimiter(value):
    if not isinstance(value, str) or len(value) != 1 or value in _BAD_DELIMITERS \
            or not (value.isprintable() or value == "\t"):
        raise ValueError(f"must be one character, like ',' or ';', not {short(value)}")
    return value


DELIMITER = Option("str", None, "the CSV column separator", convert=_delimiter)
OPTIONS = {
    "file": Option("any", doc="the data file, relative to the model file's folder",
                   convert=kinds.as_written),
    "columns": Option("any", None, "input name -> column indices (CSV and .npy)",
                      convert=kinds.as_written),
    "keys": Option("any", None, "input name -> array name (.npz)", convert=kinds.as_written),
    "delimiter": Option("str", None, "the CSV column separator (default ',', TSV: tab)",
                        convert=kinds.as_written),   # checked as DELIMITER for a CSV file
    "names": NAMES,
}


def load(ctx: SplitContext, source) -> dict:
    """The arrays of a ``file:`` source."""
    ctx.check_source(source, OPTIONS)
    path = _path(ctx, source["file"])
    suffix = path.suffix.lower()
    if suffix == ".npz":
        if "columns" in source or "delimiter" in source:
            key = "columns" if "columns" in source else "delimiter"
            raise ctx.model_error(f"{short(key)} is for CSV and .npy files; an .npz archive "
                                  f"uses keys: {{x: X, t: y}}", key)
        with _open_data_file(ctx, path, limits.MAX_DATA_BYTES) as (handle, size):
            return _npz(ctx, source, path, handle)
    if "keys" in source:
        raise ctx.model_error("'keys' is for .npz archives; CSV and .npy files use "
                              "columns: {x: [0, 1], t: [2]}", "keys")
    header = None
    if suffix == ".npy":
        if "delimiter" in source:
            raise ctx.model_error("'delimiter' is for CSV files", "delimiter")
        with _open_data_file(ctx, path, limits.MAX_DATA_BYTES) as (handle, size):
            table = _read_npy(ctx, path, lambda: handle, size)
    else:
        delimiter = ctx.value(source, "delimiter", DELIMITER) or ("\t" if suffix == ".tsv"
                                                                  else ",")
        with _open_data_file(ctx, path, limits.MAX_CSV_BYTES) as (handle, size):
            header, table = _read_csv(ctx, path, handle, size, delimiter)
    return _columns(ctx, source, table, header, path)


def _path(ctx, raw) -> Path:
    """The data file's path: absolute, or relative to the model file's folder."""
    if not isinstance(raw, str) or not raw:
        raise ctx.model_error(f"{ctx.where()}.file must be a path, not {short(raw)}", "file")
    if "\0" in raw:
        raise ctx.model_error(f"{ctx.where()}.file {short(raw)} contains a NUL character",
                              "file")
    try:
        path = Path(raw).expanduser()
    except RuntimeError as exc:   # ~nosuchuser/...
        raise ctx.data_error(f"cannot expand the data file path {short(raw)}: {exc}",
                             "file") from None
    return path if path.is_absolute() else ctx.base_dir / path


@contextlib.contextmanager
def _open_data_file(ctx, path, max_bytes):
    """Open a data file for reading, as ``(binary handle, size)``: only a regular file of 1 to
    ``max_bytes`` bytes (never a folder, FIFO or device); every failure is located."""
    shown = show_path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ctx.data_error(f"data file not found: {shown} (a relative path is read from the "
                             f"model file's folder, {show_path(ctx.base_dir)})", "file") from None
    except PermissionError:
        raise ctx.data_error(f"cannot read data file {shown}: permission denied",
                             "file") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ctx.data_error(f"cannot open data file {shown}: {reason}", "file") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ctx.data_error(f"data file {shown} is a folder, not a file", "file")
        raise ctx.data_error(f"data file {shown} is not a regular file (a FIFO, device "
                             "or socket); give the path of a file", "file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size == 0:
            raise ctx.data_error(f"data file {shown} is empty", "file")
        if info.st_size > max_bytes:
            raise ctx.data_error(f"data file {shown} has {info.st_size:,} bytes, more than the "
                                 f"limit of {max_bytes:,} for this kind of file", "file")
        try:
            yield handle, info.st_size
        except OSError as exc:
            raise ctx.data_error(f"cannot read data file {shown}: "
                                 f"{getattr(exc, 'strerror', None) or exc}", "file") from None


def _read_npy(ctx, path, open_array, size, what=""):
    """Read one .npy array (a file, or a member of an .npz archive) after checking its header:
    numbers only, and no more bytes than the file holds or the limits allow."""
    shown = f"{show_path(path)}{what}"
    handle = open_array()
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        header = handle.tell()
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise ctx.data_error(f"cannot read {shown} as a .npy array: {short(str(exc), 200)}",
                             "file") from None
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.hasobject:
        raise ctx.data_error(f"{shown} holds {short(str(dtype))} values, not numbers", "file")
    count = math.prod(shape)
    if count == 0:
        raise ctx.data_error(f"{shown} holds an empty array of shape {shape}", "file")
    if count > limits.MAX_ELEMENTS or count * dtype.itemsize > limits.MAX_DATA_BYTES:
        raise ctx.data_error(f"{shown} claims an array of shape {shape} ({count:,} numbers), "
                             f"more than the limit of {limits.MAX_ELEMENTS:,}", "file")
    if count * dtype.itemsize > size - header:
        raise ctx.data_error(f"{shown} is truncated or corrupt: its header promises shape "
                             f"{shape} ({count * dtype.itemsize:,} bytes of data) but it holds "
                             f"{max(size - header, 0):,}", "file")
    try:
        handle = open_array()
        handle.seek(0)
        return np.lib.format.read_array(handle, allow_pickle=False)
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise ctx.data_error(f"cannot read {shown} as a .npy array: {short(str(exc), 200)}",
                             "file") from None


def _read_csv(ctx, path, handle, size, delimiter):
    """Read a numeric CSV table; return (header names or None, float64 array (rows, columns))."""
    shown = show_path(path)
    raw = handle.read(min(size, limits.MAX_CSV_BYTES) + 1)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ctx.data_error(f"{shown}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} "
                             "cannot be decoded); save the file as UTF-8", "file") from None
    del raw
    values, header, width, rows = pyarray.array("d"), None, None, 0
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            line_number = reader.line_num
            cells = [cell.strip() for cell in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            try:
                numbers = [float(cell) for cell in cells]
            except ValueError:
                # the first row may be column names: all present, not all numbers
                if not rows and header is None and all(cells):
                    header, width = cells, len(cells)
                    continue
                bad = next(c for c in cells if not _is_number(c))
                raise ctx.data_error(f"{shown}:{line_number}: {short(bad)} is not a number",
                                     "file") from None
            if width is not None and len(numbers) != width:
                raise ctx.data_error(f"{shown}:{line_number}: {len(numbers)} columns, but the "
                                     f"first row has {width}", "file")
            width = len(numbers)
            values.extend(numbers)
            rows += 1
    except csv.Error as exc:
        raise ctx.data_error(f"{shown}:{reader.line_num}: not a readable CSV line: {exc}",
                             "file") from None
    if not rows:
        raise ctx.data_error(f"{shown} has no rows of numbers", "file")
    return header, np.frombuffer(values, dtype=np.float64).reshape(rows, width).copy()


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _columns(ctx, source, table, header, path):
    """Cut a table (CSV or .npy) into input arrays by ``columns`` or by the default rule."""
    if "columns" not in source:
        names = ctx.names(source)
        if len(names) == 1:
            return {names[0]: ctx.fit_rank(names[0], table)}
        if table.ndim != 2 or table.shape[1] < 2:
            raise ctx.data_error(f"{path}: need a table of at least two columns to split into "
                                 f"{names[0]} (all but the last column) and {names[1]} (the last); "
                                 f"got shape {table.shape}. Use columns: to choose", "file")
        return {names[0]: ctx.fit_rank(names[0], table[:, :-1]),
                names[1]: ctx.fit_rank(names[1], table[:, -1:])}

    if "names" in source:
        raise ctx.model_error("give either 'columns' or 'names', not both: columns already "
                              "says which input gets which columns", "names")
    mapping = source["columns"]
    if not isinstance(mapping, dict) or not mapping:
        raise ctx.model_error(f"{ctx.where()}.columns must map input names to column indices, "
                              f"like {{x: [0, 1], t: [2]}}", "columns")
    if table.ndim == 1:
        table = table[:, None]
    if table.ndim != 2:
        raise ctx.data_error(f"{path}: columns need a 2-D table, but the array has shape "
                             f"{table.shape}", "file")
    arrays = {}
    for name, spec in mapping.items():
        ctx.input_name(name, "columns", name)
        indices = spec if isinstance(spec, list) else [spec]
        if not indices:
            raise ctx.model_error(f"{ctx.where()}.columns.{name} is empty", "columns", name)
        if len(indices) * table.shape[0] > limits.MAX_ELEMENTS:
            raise ctx.model_error(f"{ctx.where()}.columns.{name}: {len(indices):,} columns of "
                                  f"{table.shape[0]:,} rows is more than the limit of "
                                  f"{limits.MAX_ELEMENTS:,} numbers", "columns", name)
        picked = [_column_index(ctx, name, c, table.shape[1], header) for c in indices]
        arrays[name] = table[:, picked] if isinstance(spec, list) else table[:, picked[0]]
    return arrays


def _column_index(ctx, name, column, width, header):
    """Turn one entry of ``columns`` (an index or a header name) into a column index."""
    if isinstance(column, str):
        if header is None:
            raise ctx.model_error(f"column {short(column)} given by name, but the file has no "
                                  f"header row; use column numbers counted from 0",
                                  "columns", name)
        if column not in header:
            raise ctx.data_error(f"no column named {short(column)}{did_you_mean(column, header)}; "
                                 f"columns: {', '.join(header)}", "columns", name)
        return header.index(column)
    if isinstance(column, bool) or not isinstance(column, int):
        raise ctx.model_error(f"column {short(column)} must be a column number (from 0)",
                              "columns", name)
    if not -width <= column < width:
        raise ctx.data_error(f"column {column} does not exist: the table has {width} columns "
                             f"(numbered 0 to {width - 1})", "columns", name)
    return column


_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
               NotImplementedError, RuntimeError)   # RuntimeError: an encrypted member


def _npz(ctx, source, path, handle):
    """Read the arrays the model needs from an .npz archive (a zip of .npy files); each
    member's header is checked before its data is read."""
    name = show_path(path)
    try:
        archive = zipfile.ZipFile(handle)
        members = archive.infolist()
    except _ZIP_ERRORS as exc:
        raise ctx.data_error(f"cannot read {name} as an .npz archive: "
                             f"{short(str(exc), 200)}", "file") from None
    if len(members) > limits.MAX_NPZ_MEMBERS:
        raise ctx.data_error(f"{name} holds {len(members):,} arrays, more than the limit of "
                             f"{limits.MAX_NPZ_MEMBERS:,}", "file")
    stored = {m.filename[:-4]: m for m in members if m.filename.endswith(".npy")}
    arrays = _npz_arrays(ctx, source, name, stored,
                         lambda key: _npz_member(ctx, path, archive, stored[key], key))
    for input_name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise ctx.data_error(f"{name}: array for {short(input_name)} holds {array.dtype}, "
                                 "not numbers", "file")
    return arrays


def _npz_member(ctx, path, archive, member, key):
    """One array of the archive, its .npy header checked first (see :func:`_read_npy`)."""
    name = show_path(path)
    opened = []

    def open_member():
        for old in opened:
            old.close()
        try:
            opened.append(archive.open(member))
        except _ZIP_ERRORS as exc:
            raise ctx.data_error(f"cannot read array {short(key)} of {name}: "
                                 f"{short(str(exc), 200)}", "file") from None
        return opened[-1]
    try:
        return _read_npy(ctx, path, open_member, member.file_size, f" (array {short(key)})")
    except _ZIP_ERRORS as exc:
        raise ctx.data_error(f"cannot read array {short(key)} of {name}: "
                             f"{short(str(exc), 200)}", "file") from None
    finally:
        for old in opened:
            old.close()


def _npz_arrays(ctx, source, name, stored, load):
    """The archive's arrays by input name: by ``keys``, else every input named like an array."""
    if "keys" not in source:
        wanted = ctx.names(source) if "names" in source else list(ctx.inputs)
        arrays = {key: ctx.fit_rank(key, load(key)) for key in wanted if key in stored}
        if not arrays:
            raise ctx.data_error(f"{name} holds {known(stored)}, none of which is named like "
                                 f"a model input ({known(ctx.inputs)}); map them with "
                                 f"keys: {{input: array}}", "file")
        return arrays
    if "names" in source:
        raise ctx.model_error("give either 'keys' or 'names', not both", "names")
    mapping = source["keys"]
    if not isinstance(mapping, dict) or not mapping:
        raise ctx.model_error(f"{ctx.where()}.keys must map input names to array names "
                              f"in the archive, like {{x: X, t: y}}", "keys")
    arrays = {}
    for input_name, key in mapping.items():
        ctx.input_name(input_name, "keys", input_name)
        if not isinstance(key, str):
            raise ctx.model_error(f"{ctx.where()}.keys.{input_name} must be an array name (a "
                                  f"string), got {short(key)}", "keys", input_name)
        if key not in stored:
            raise ctx.data_error(f"{name} has no array {short(key)}{did_you_mean(key, stored)}; "
                                 f"it holds: {known(stored)}", "keys", input_name)
        arrays[input_name] = ctx.fit_rank(input_name, load(key))
    return arrays
