"""The ``dataset: mnist`` source: the four IDX files, where they are looked for, and a cache.

An IDX file is a big-endian magic number (0, 0, type code, number of dimensions), one 32-bit
size per dimension, then the values (unsigned bytes).  The files are found by
:func:`mnist_files`; each parsed file is cached (by path, modification time and size), read-only.
"""
from __future__ import annotations

import functools
import gzip
import math
import os
import stat
import zlib
from pathlib import Path

import numpy as np

from .. import limits
from ..errors import DataError, did_you_mean, known
from ..limits import short
from ..options import Option
from . import kinds
from .context import NAMES, SplitContext, show_path

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DEFAULT_MNIST_DIR = "~/.minigraph/data/mnist"
IDX_IMAGES_MAGIC = 2051   # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049   # 0x00000801: unsigned bytes, 1 dimension
DATASETS = ("mnist",)


def _scale(value):
    """``true`` -> 255, ``false`` -> no scaling (None), a positive number -> that number."""
    if value is True:
        return 255.0
    if value is False or value is None:
        return None
    value = kinds.real(value)
    if value <= 0:
        raise ValueError(f"must be a positive number (pixels are divided by it), not {value}")
    return value


OPTIONS = {
    "dataset": Option("any", doc="the data set's name: mnist", convert=kinds.as_written),
    "split": Option("str", None, "train or test; default: the section's name",
                    convert=kinds.choice("train", "test")),
    "scale": Option("any", 255.0, "divide pixels by this (true = 255, false = keep 0..255)",
                    convert=_scale),
    "flatten": Option("bool", None, "images (n, 784) rather than (n, 1, 28, 28)",
                      convert=kinds.flag),
    "one_hot": Option("bool", None, "labels as (n, 10) rows of 0/1", convert=kinds.flag),
    "names": NAMES,
}


def load(ctx: SplitContext, source) -> dict:
    """The arrays of a ``dataset:`` source: images and (unless ``names`` has one) labels."""
    name = source["dataset"]
    if name not in DATASETS:
        raise ctx.model_error(f"unknown dataset {short(name)}{did_you_mean(name, DATASETS)}; "
                              f"datasets: {known(DATASETS)}", "dataset")
    options = ctx.check_source(source, OPTIONS, f"{ctx.where()} (dataset {name})")
    names = ctx.names(source)
    images, labels = _read_split(ctx, options["split"] or ctx.split)
    if options["limit"] is not None:
        images, labels = images[:options["limit"]], labels[:options["limit"]]
    arrays = {names[0]: _shape_images(ctx, names[0], images, options)}
    if len(names) == 2:   # class indices, or one-hot rows when asked (or declared with rank 2)
        one_hot = options["one_hot"]
        if one_hot is None:
            one_hot = ctx.rank(names[1]) == 2
        classes = labels.astype(np.int64)
        arrays[names[1]] = np.eye(10, dtype=np.float32)[classes] if one_hot else classes
    return arrays


def _read_split(ctx, split):
    """The images and labels of one split, each file checked; errors located at ``dataset``."""
    try:
        folder = mnist_files(ctx.data_dir)
    except DataError as exc:
        raise ctx.data_error(exc.message, "dataset") from None
    image_file, label_file = (_find_file(folder, f) for f in MNIST_FILES[split])
    try:
        images = _read_idx(image_file, IDX_IMAGES_MAGIC)
        labels = _read_idx(label_file, IDX_LABELS_MAGIC)
    except DataError as exc:
        raise ctx.data_error(exc.message, "dataset") from None
    if labels.size and labels.max() > 9:
        raise ctx.data_error(f"{show_path(label_file)} is corrupt: it holds the label "
                             f"{int(labels.max())}, but MNIST labels are 0 to 9", "dataset")
    if len(images) != len(labels):
        raise ctx.data_error(f"{image_file} has {len(images)} images but {label_file} has "
                             f"{len(labels)} labels", "dataset")
    return images, labels


def _shape_images(ctx, name, images, options):
    """Scale the pixels, then shape them the way the image input is declared."""
    pixels = images.astype(np.float32)
    if options["scale"] is not None:
        pixels /= np.float32(options["scale"])
    n, rows, cols = images.shape
    rank = ctx.rank(name)
    flatten = options["flatten"]
    if flatten is None:
        flatten = rank == 2
    if flatten:
        return pixels.reshape(n, rows * cols)
    if rank != 3:
        return pixels.reshape(n, 1, rows, cols)          # NCHW with one channel
    return pixels


def _find_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` or ``folder/name.gz``, whichever exists (plain first), else None."""
    for candidate in (folder / name, folder / (name + ".gz")):
        try:
            if candidate.is_file():
                return candidate
        except OSError:   # an unreadable folder on the way
            continue
    return None


def _search_dirs(data_dir=None):
    """Where MNIST is looked for, in order, as (folder, why it was searched)."""
    def expand(path):
        try:
            return Path(path).expanduser()
        except RuntimeError:   # ~nosuchuser: searched as written (and not found)
            return Path(path)

    bases = []
    if data_dir:
        bases.append((expand(data_dir), "from --data-dir"))
    if os.environ.get("MINIGRAPH_DATA"):
        bases.append((expand(os.environ["MINIGRAPH_DATA"]), "from MINIGRAPH_DATA"))
    bases.append((expand(DEFAULT_MNIST_DIR), "the default"))
    folders = []
    for base, why in bases:
        folders.append((base, why))
        folders.append((base / "mnist", why))
    return folders


def mnist_files(data_dir=None) -> Path:
    """The folder holding the four MNIST files, or a DataError saying where it looked.

    Looks in ``data_dir``, then ``$MINIGRAPH_DATA``, then ``~/.minigraph/data/mnist``; each
    folder may hold the files directly or in an ``mnist/`` subfolder.  Each file may be plain
    or gzip-compressed (``.gz``).
    """
    needed = [name for pair in MNIST_FILES.values() for name in pair]
    searched = []
    for folder, why in _search_dirs(data_dir):
        missing = [name for name in needed if _find_file(folder, name) is None]
        if not missing:
            return folder
        note = why
        if _is_dir(folder) and len(missing) < len(needed):
            found = len(needed) - len(missing)
            note += f"; has only {found} of the 4, missing {', '.join(missing)}"
        elif not _is_dir(folder):
            note += "; no such folder"
        searched.append(f"  {folder}  ({note})")
    raise DataError(
        "MNIST files not found. Needed: " + ", ".join(needed)
        + " (each may also end in .gz). Searched:\n" + "\n".join(searched)
        + "\nTo fix: put the four files in one of these folders, or point minigraph at the "
          "folder that holds them with --data-dir DIR or the environment variable "
          "MINIGRAPH_DATA=DIR.")


def _is_dir(folder: Path) -> bool:
    try:
        return folder.is_dir()
    except OSError:
        return False


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file (plain or .gz) as a read-only array; parsed files are cached."""
    try:
        info = path.stat()
    except OSError as exc:
        raise DataError(f"cannot read {show_path(path)}: {exc.strerror or exc}") from None
    return _read_idx_cached(str(path), info.st_mtime_ns, info.st_size, magic)


_GZIP_ERRORS = (OSError, EOFError, zlib.error)   # gzip.BadGzipFile is an OSError


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, mtime_ns: int, size: int, magic: int) -> np.ndarray:
    """Parse one IDX file.  The cache key includes the modification time, so an edited file
    is read again; the array is read-only so that no caller can change the cached copy."""
    name = show_path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}") \
            from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(f"{name} is not a regular file")
    with os.fdopen(fd, "rb") as raw:
        try:
            if path.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="rb") as handle:
                    return _parse_idx_stream(handle, name, magic)
            return _parse_idx_stream(raw, name, magic)
        except _GZIP_ERRORS as exc:
            what = "a damaged gzip file" if path.endswith(".gz") else "unreadable"
            raise DataError(f"cannot read {name}: it is {what} "
                            f"({getattr(exc, 'strerror', None) or exc or type(exc).__name__})") \
                from None


def _parse_idx_stream(handle, path: str, magic: int) -> np.ndarray:
    """Decode an IDX stream: a big-endian magic number (0, 0, type code, number of dimensions),
    then one big-endian 32-bit size per dimension, then the values (here: unsigned bytes).
    The sizes are checked against ``limits.MAX_ELEMENTS`` before the values are read."""
    head = handle.read(4)
    found = int.from_bytes(head, "big") if len(head) == 4 else None
    if found != magic:
        shown = "none (file too short)" if found is None else f"{found} (0x{found:08x})"
        kind = "image" if magic == IDX_IMAGES_MAGIC else "label"
        hint = ""
        if head[:2] == b"\x1f\x8b":
            hint = " It looks gzip-compressed: its name must end in .gz."
        raise DataError(f"{path} is not an MNIST {kind} file: its magic number is {shown}, "
                        f"expected {magic} (0x{magic:08x}).{hint}")
    ndim = head[3]
    sizes = handle.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(f"{path} is truncated: its header is incomplete")
    dims = tuple(int.from_bytes(sizes[4 * i:4 * i + 4], "big") for i in range(ndim))
    count = math.prod(dims)
    if count == 0:
        raise DataError(f"{path} holds no examples (its header says {dims})")
    if count > limits.MAX_ELEMENTS:
        raise DataError(f"{path} claims {dims} = {count:,} values, more than the limit of "
                        f"{limits.MAX_ELEMENTS:,}")
    data = handle.read(count + 1)
    if len(data) != count:
        raise DataError(f"{path} is truncated or corrupt: its header promises {dims} = {count} "
                        f"bytes of data, but it holds {len(data)}"
                        + (" or more" if len(data) > count else ""))
    return np.frombuffer(data, dtype=np.uint8, count=count).reshape(dims)
