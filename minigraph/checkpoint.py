"""Checkpoints: params by name, optimizer state, epoch and RNG state in one ``.npz``.

Written to a temporary file in the same folder, flushed to disk, then renamed over the old
one (``os.replace`` is atomic), so a crash, a ``kill -9`` or Ctrl-C during a save never
damages the last good checkpoint; Ctrl-C is deferred while the file is written and renamed
(in the main thread), so the new checkpoint is whole before the interrupt is raised.  Only a
regular file (or a new name in an existing folder) is ever replaced: a FIFO, a device, a
folder or a symbolic link is refused.

Reading trusts nothing: the archive is opened with :mod:`zipfile` and each member's ``.npy``
header is checked (dtype: real numbers; shape: the model's when known; size: against the
member's size and :mod:`minigraph.limits`) *before* its data is read, so a hostile file ends
in one :class:`DataError` naming the file and the key, and never allocates anything large.
A checkpoint is only arrays: nothing is unpickled.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import signal
import stat
import struct
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from . import limits
from .backend import to_numpy
from .errors import DataError, did_you_mean, known

FORMAT = "minigraph-checkpoint-1"
META_KEYS = ("epoch", "rng_state", "model", "format")
MAX_EPOCH = 10 ** 9          # an epoch number beyond this is not a real run
MAX_STEPS = 1 << 53          # optimizer steps (exact as a float)
MAX_MEMBERS = 100_000        # arrays in one archive
MAX_META_CHARS = 1 << 20     # characters of the JSON meta entry
REAL_KINDS = "iuf"           # integer, unsigned and floating point dtypes


@dataclass
class Checkpoint:
    params: dict
    optimizer: dict = field(default_factory=dict)
    epoch: int | None = None
    rng_state: dict | None = None
    model: str | None = None


# ==== deferring Ctrl-C ===========================================================================

class _Deferred:
    """A SIGINT handler that only records that the signal came."""

    def __init__(self):
        self.hit = False

    def __call__(self, signum, frame):
        self.hit = True


@contextlib.contextmanager
def defer_sigint(reraise: bool = True):
    """Hold back Ctrl-C (SIGINT) for the duration of the block, in the main thread.

    Yields an object whose ``hit`` says whether a SIGINT came meanwhile; when it did and
    ``reraise`` is true, :class:`KeyboardInterrupt` is raised once the block has finished
    (not when the block itself raised).  Elsewhere than in the main thread, or when SIGINT's
    handler was not installed from Python, it does nothing.  Nested uses share the outer one.
    """
    if threading.current_thread() is not threading.main_thread():
        yield _Deferred()
        return
    previous = signal.getsignal(signal.SIGINT)
    if isinstance(previous, _Deferred):
        yield previous
        return
    if previous is None:
        yield _Deferred()
        return
    handler = _Deferred()
    signal.signal(signal.SIGINT, handler)
    try:
        yield handler
    finally:
        signal.signal(signal.SIGINT, previous)  # a signal still pending reaches `handler`
    if handler.hit and reraise and callable(previous):
        raise KeyboardInterrupt


class _Once:
    """A SIGINT handler that raises KeyboardInterrupt once, then only records."""

    def __init__(self):
        self.hit = False
        self.armed = True

    def __call__(self, signum, frame):
        self.hit = True
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt

    def disarm(self) -> None:
        self.armed = False


@contextlib.contextmanager
def interrupt_once():
    """Within the block, the first Ctrl-C raises KeyboardInterrupt and later ones are only
    recorded (``.hit``), so the code that handles the first cannot itself be interrupted.

    ``.disarm()`` turns the raising off.  Only in the main thread, and only when SIGINT has
    Python's default handler; otherwise it changes nothing.  Nested uses share the outer
    guard (the CLI holds one around a run and its final message).
    """
    if threading.current_thread() is not threading.main_thread():
        yield _Once()
        return
    current = signal.getsignal(signal.SIGINT)
    if isinstance(current, _Once):  # nested: share the outer guard
        yield current
        return
    guard = _Once()
    if current is not signal.default_int_handler:
        yield guard
        return
    signal.signal(signal.SIGINT, guard)
    try:
        yield guard
    finally:
        guard.disarm()
        signal.signal(signal.SIGINT, signal.default_int_handler)


# ==== saving =====================================================================================

def check_save_target(path) -> None:
    """Refuse a save target whose folder is missing, or that exists and is not a regular file.

    The atomic rename would replace whatever is there (a FIFO, a device node, a symbolic
    link) with a regular file; a checkpoint only ever replaces a checkpoint.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DataError(f"cannot save checkpoint {path}: folder {folder} does not exist")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DataError(f"cannot save checkpoint {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = ("a folder" if stat.S_ISDIR(info.st_mode) else
                "a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else
                "a symbolic link" if stat.S_ISLNK(info.st_mode) else
                "a character device" if stat.S_ISCHR(info.st_mode) else
                "a block device" if stat.S_ISBLK(info.st_mode) else
                "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
        raise DataError(f"cannot save checkpoint {path}: it is {kind}; a checkpoint is written "
                        "to a new file and renamed, so it may only replace a regular file")


def save_checkpoint(path, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` atomically to ``path``.

    A Ctrl-C meanwhile (main thread) is held back until the new file is in place, then
    raised as :class:`KeyboardInterrupt`.
    """
    path = Path(path)
    check_save_target(path)
    arrays = {f"param/{k}": to_numpy(v) for k, v in ckpt.params.items()}
    arrays.update({f"optim/{k}": to_numpy(v) for k, v in ckpt.optimizer.items()})
    meta = {"epoch": ckpt.epoch, "rng_state": ckpt.rng_state, "model": ckpt.model,
            "format": FORMAT}
    arrays["meta"] = np.array(json.dumps(meta))
    folder = path.parent if str(path.parent) else Path(".")
    with defer_sigint():
        fd, tmp = _new_file(folder, path.name)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            check_save_target(path)  # still nothing special there
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def _new_file(folder: Path, name: str) -> tuple:
    """``(fd, path)`` of a new temporary file next to ``name``, created with mode 0666 less the
    umask, as ``open`` creates files (``tempfile.mkstemp`` would make it 0600 whatever the
    umask, and the rename would keep that)."""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name next to {folder / name}")


# ==== loading ====================================================================================

def _fmt_shape(shape) -> str:
    return str(tuple(int(d) for d in shape))


def _dtype_text(dtype) -> str:
    return {"U": "text", "S": "bytes", "c": "complex numbers", "b": "booleans",
            "O": "Python objects", "V": "structured records", "M": "dates",
            "m": "time deltas"}.get(dtype.kind, str(dtype))


class _Reader:
    """Reads the members of one ``.npz``, checking each header before its data."""

    def __init__(self, path: Path, zf: zipfile.ZipFile):
        self.path, self.zf = path, zf

    def fail(self, message) -> DataError:
        return DataError(f"{self.path}: {message}")

    def header(self, info: zipfile.ZipInfo, key: str):
        """(file, shape, fortran_order, dtype, header length) of one member, data unread."""
        f = self.zf.open(info)
        try:
            version = npy_format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except BaseException:
            f.close()
            raise
        return f, tuple(shape), fortran, dtype, f.tell()

    def read(self, info, key, *, kinds=REAL_KINDS, shape=None, max_chars=None, what=None):
        """The array of member ``info`` (key ``key``), checked before its data is read."""
        what = what or f"'{key}'"
        f, got_shape, fortran, dtype, offset = self.header(info, key)
        with f:
            if dtype.hasobject or dtype.kind not in kinds:
                wanted = "text" if kinds == "U" else "real numbers"
                raise self.fail(f"{what} holds {_dtype_text(dtype)}, expected {wanted}")
            if shape is not None and got_shape != tuple(shape):
                raise self.fail(f"{what} has shape {short_shape(got_shape)}, the model's is "
                                f"{_fmt_shape(shape)}")
            if any(d < 0 or d > limits.MAX_DIM for d in got_shape):
                raise self.fail(f"{what} has an impossible shape {short_shape(got_shape)}")
            count = math.prod(got_shape)
            nbytes = count * dtype.itemsize
            if count > limits.MAX_ELEMENTS or nbytes > limits.MAX_DATA_BYTES:
                raise self.fail(f"{what} claims {count:,} values of {dtype} "
                                f"({nbytes:,} bytes), more than the limit of "
                                f"{limits.MAX_ELEMENTS:,} values")
            if max_chars is not None and dtype.itemsize // 4 > max_chars:
                raise self.fail(f"{what} is {dtype.itemsize // 4:,} characters long, more "
                                f"than the limit of {max_chars:,}")
            if offset + nbytes != info.file_size:
                raise self.fail(f"{what}: its header promises {nbytes:,} bytes of data but "
                                f"the archive member holds {info.file_size - offset:,}")
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise self.fail(f"{what} is truncated")
        array = np.frombuffer(data, dtype=dtype)
        array = (array.reshape(got_shape[::-1]).transpose() if fortran
                 else array.reshape(got_shape))
        return array.astype(dtype.newbyteorder("="), copy=True)


def short_shape(shape) -> str:
    return limits.short(tuple(int(d) for d in shape))


def _finite(reader, array, what):
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise reader.fail(f"{what} holds NaN or infinity")


def check_rng_state(state) -> str | None:
    """Why ``state`` cannot be restored into the trainer's generator, or None if it can."""
    if not isinstance(state, dict):
        return f"must be a mapping, got {limits.short(state)}"
    scratch = np.random.default_rng(0)
    try:
        scratch.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as exc:
        return f"cannot be restored into a {type(scratch.bit_generator).__name__} generator " \
               f"({limits.short(str(exc), 100)})"
    return None


def optimizer_slots(optimizer) -> tuple[set, tuple]:
    """(slot names, scalar slot names) of ``optimizer``'s per-param state, found by one step
    of a fresh copy on a one-number param."""
    from .optim import make_optimizer

    scratch = make_optimizer(optimizer.config())
    param = np.zeros(1, np.float32)
    with np.errstate(all="ignore"):
        scratch.step({"p": param}, {"p": np.ones(1, np.float32)})
    return set(scratch.state.get("p", {})), tuple(optimizer.scalar_slots)


def load_checkpoint(path, *, params: dict | None = None, optimizer=None,
                    partial: bool = True) -> Checkpoint:
    """Read a checkpoint (or a plain ``.npz`` of params keyed by name), validating it all.

    ``params``: the model's param shapes by name; names and shapes are then checked before
    any data is read.  ``optimizer``: the run's optimizer; its state entries (``t`` and
    ``NAME/SLOT``) are then checked against the model's params and the optimizer's slots.
    ``partial``: whether a plain archive may hold only some of the params.  Every problem
    raises one :class:`DataError` that names the file, the key, what was expected and what
    was found.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no checkpoint file at {path}")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as exc:
        raise DataError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    if magic == b"\x93NUMPY":
        raise DataError(f"{path} is not a minigraph checkpoint: it is a single .npy array, "
                        "not a .npz archive of params by name (as `minigraph run --save` "
                        "writes)")
    try:
        with zipfile.ZipFile(path) as zf:
            return _read(_Reader(path, zf), params, optimizer, partial)
    except DataError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
            ValueError, TypeError, SyntaxError, NotImplementedError, RuntimeError,
            struct.error, OverflowError, KeyError, MemoryError, RecursionError) as exc:
        text = limits.short(str(exc) or type(exc).__name__, 120)
        raise DataError(f"{path} is not a minigraph checkpoint: not a readable .npz archive "
                        f"({text})") from None


def _read(reader: _Reader, shapes, optimizer, partial) -> Checkpoint:
    zf = reader.zf
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise reader.fail(f"holds {len(infos):,} arrays, more than the limit of {MAX_MEMBERS:,}")
    members = {}
    for info in infos:
        name = info.filename
        if not name.endswith(".npy") or info.is_dir():
            raise reader.fail(f"entry {limits.short(name)} is not an .npy array")
        key = name[:-4]
        if key in members:
            raise reader.fail(f"entry {limits.short(key)} appears twice")
        members[key] = info
    if "meta" not in members:  # a plain archive of params by name
        found = {}
        for key, info in members.items():
            found[key] = _param(reader, key, info, shapes, f"param {limits.short(key)}")
        if shapes is not None and not partial:
            _all_params(reader, found, shapes)
        return Checkpoint(params=found)

    meta = _meta(reader, members.pop("meta"))
    params, optim = {}, {}
    for key, info in members.items():
        if key.startswith("param/"):
            name = key[6:]
            params[name] = _param(reader, name, info, shapes, f"param {limits.short(name)}")
        elif key.startswith("optim/"):
            optim[key[6:]] = info
        else:
            raise reader.fail(f"unexpected entry {limits.short(key)} (a checkpoint holds "
                              "'meta', 'param/NAME' and 'optim/...')")
    if shapes is not None:
        _all_params(reader, params, shapes)
    state = _optimizer_state(reader, optim, shapes, optimizer)
    return Checkpoint(params, state, meta["epoch"], meta["rng_state"], meta["model"])


def _param(reader, name, info, shapes, what):
    if shapes is not None and name not in shapes:
        raise reader.fail(f"{what} is not a param of the model"
                          f"{did_you_mean(name, shapes)} (its params: {known(shapes)})")
    array = reader.read(info, name, shape=None if shapes is None else shapes[name], what=what)
    _finite(reader, array, what)
    return array


def _all_params(reader, found, shapes):
    missing = [n for n in shapes if n not in found]
    if missing:
        raise reader.fail(f"has no value for param{'s' if len(missing) > 1 else ''} "
                          f"{known(repr(m) for m in missing)}")


def _meta(reader, info) -> dict:
    text = reader.read(info, "meta", kinds="U", shape=(), max_chars=MAX_META_CHARS,
                       what="'meta'")
    try:
        meta = json.loads(str(text))
    except (ValueError, RecursionError) as exc:
        raise reader.fail(f"'meta' is not valid JSON ({limits.short(str(exc), 80)})") from None
    if not isinstance(meta, dict):
        raise reader.fail(f"'meta' must be a JSON object, found {type(meta).__name__} "
                          f"{limits.short(meta)}")
    for key in meta:
        if key not in META_KEYS:
            raise reader.fail(f"'meta' has an unknown key {limits.short(key)}"
                              f"{did_you_mean(key, META_KEYS)} (expected: "
                              f"{', '.join(META_KEYS)})")
    fmt = meta.get("format", FORMAT)
    if fmt != FORMAT:
        raise reader.fail(f"meta 'format' is {limits.short(fmt)}, expected '{FORMAT}'")
    epoch = meta.get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)
                              or not 0 <= epoch <= MAX_EPOCH):
        raise reader.fail(f"meta 'epoch' must be a whole number from 0 to {MAX_EPOCH:,} "
                          f"(or null), found {limits.short(epoch)}")
    model = meta.get("model")
    if model is not None and (not isinstance(model, str) or len(model) > limits.MAX_NAME):
        raise reader.fail(f"meta 'model' must be a model name (or null), found "
                          f"{limits.short(model)}")
    rng_state = meta.get("rng_state")
    if rng_state is not None:
        problem = check_rng_state(rng_state)
        if problem:
            raise reader.fail(f"meta 'rng_state' {problem}")
    return {"epoch": epoch, "model": model, "rng_state": rng_state}


def _optimizer_state(reader, infos: dict, shapes, optimizer) -> dict:
    """The optimizer entries: 't' and 'NAME/SLOT', each checked before it is read."""
    if not infos:
        return {}
    slots, scalar_slots = optimizer_slots(optimizer) if optimizer is not None else (None, ())
    if "t" not in infos:
        raise reader.fail("optimizer state has no step count 't'")
    t = reader.read(infos["t"], "optim/t", kinds="iu", shape=(), what="optimizer 't'")
    t = int(t)
    if not 0 <= t <= MAX_STEPS:
        raise reader.fail(f"optimizer 't' must be a whole number from 0 to {MAX_STEPS}, found {t}")
    state = {"t": np.asarray(t)}
    by_param: dict[str, set] = {}
    for key, info in infos.items():
        if key == "t":
            continue
        what = f"optimizer state {limits.short(key)}"
        name, sep, slot = key.rpartition("/")
        if not sep or not name or not slot:
            raise reader.fail(f"{what}: expected 't' or 'NAME/SLOT'")
        if shapes is not None and name not in shapes:
            raise reader.fail(f"{what} is for a param the model does not have"
                              f"{did_you_mean(name, shapes)} (its params: {known(shapes)})")
        if slots is not None and slot not in slots:
            raise reader.fail(f"{what}: optimizer '{optimizer.name}' has no slot "
                              f"{limits.short(slot)}{did_you_mean(slot, slots)} (its slots: "
                              f"{', '.join(sorted(slots))})")
        scalar = slot in scalar_slots or (slots is None and slot == "step")
        if scalar:
            value = reader.read(info, key, kinds="iu" if slot == "step" else REAL_KINDS,
                                shape=(), what=what)
            _finite(reader, value, what)
            if slot == "step" and not 0 <= int(value) <= t:
                raise reader.fail(f"{what} must be a whole number from 0 to t = {t}, "
                                  f"found {int(value)}")
        else:
            value = reader.read(info, key, shape=None if shapes is None else shapes[name],
                                what=what)
            _finite(reader, value, what)
        state[key] = value
        by_param.setdefault(name, set()).add(slot)
    if slots is not None:
        for name, have in by_param.items():
            if have != slots:
                missing = sorted(slots - have)
                raise reader.fail(f"optimizer state for param '{name}' lacks slot"
                                  f"{'s' if len(missing) > 1 else ''} "
                                  f"{', '.join(missing)} of optimizer '{optimizer.name}'")
    return state
