"""Training traces: what the interactive page's slider scrubs through.

A :class:`TraceRecorder` is a training callback (``on_train_begin`` / ``on_epoch_end``, as
:class:`minigraph.api.Callback`): before the first epoch and after every ``every``-th epoch
(and the last) it runs one plain forward and backward pass on a fixed *probe batch* (the
first training batch, unshuffled) with the live params, and keeps each tensor's summary
(:func:`~minigraph.render.summary.summarize`: statistics, a histogram, small heat maps, or
the whole tensor when it is small), the optimizer state's summaries, and the epoch's record
(loss and metrics).  Every epoch's record goes into the loss curve.

The size is bounded: a summary is a few hundred bytes plus at most 64 heat maps of 32 x 32
bytes per tensor, and at most :data:`MAX_RECORDS` steps are kept (``every`` defaults to
spread them over the run).  :meth:`TraceRecorder.save` writes one compressed ``.npz``
holding the JSON text (no pickles); :func:`load_trace` reads it back, checked.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .backend import to_numpy
from .checkpoint import check_save_target
from .data import iterate_batches
from .engine import Executor
from .errors import DataError
from .render.summary import summarize_pass, summarize_slots

FORMAT = "minigraph-trace-1"
MAX_RECORDS = 101        # steps kept by default: before training and about every 1/100 of it
MAX_TRACE_BYTES = 200 * 2 ** 20  # a trace file read back is at most this large (JSON text)
MAX_CURVE = 2000         # points of the loss curve kept (every epoch's record up to this many)


class TraceRecorder:
    """Records the page's steps while a model trains (see the module docstring).

    ``every``: record after every this many epochs (default: about 100 records in all).
    ``next_callback``: another callback that gets every call too (the progress bar).
    """

    def __init__(self, every: int | None = None, next_callback=None):
        if every is not None and every < 1:
            raise DataError(f"--trace-every must be a positive number of epochs, got {every}")
        self.every, self.next = every, next_callback
        self.trainer = self.executor = self.probe = None
        self.total = 0
        self.steps: list = []
        self.curve: list = []

    # -- the callback -----------------------------------------------------------------------
    def on_train_begin(self, total: int, start: int = 0, log_every=None, trainer=None) -> None:
        self.trainer, self.total = trainer, total
        if self.every is None:
            self.every = max(1, math.ceil((total - start) / (MAX_RECORDS - 1)))
        if trainer is not None:
            self.executor = Executor(trainer.graph, trainer.backend,
                                     dtype=trainer.executor.dtype, wrt="all")
            self.probe = self._probe_batch(trainer)
            self.record(start, {}, "before training" if start == 0 else f"epoch {start}")
        if self.next is not None and hasattr(self.next, "on_train_begin"):
            self.next.on_train_begin(total=total, start=start, log_every=log_every,
                                     trainer=trainer)

    def on_epoch_end(self, record: dict) -> None:
        plain = {k: float(v) for k, v in record.items() if isinstance(v, (int, float))}
        self.curve.append(plain)
        epoch = int(record.get("epoch", len(self.curve)))
        if self.trainer is not None and (epoch % self.every == 0 or epoch >= self.total):
            self.record(epoch, plain, f"epoch {epoch}")
        if self.next is not None:
            getattr(self.next, "on_epoch_end", self.next)(record)

    # -- recording --------------------------------------------------------------------------
    @staticmethod
    def _probe_batch(trainer) -> dict:
        data = trainer.train_data or {}
        if not data:
            return {}
        batches = iterate_batches(data, trainer.config.batch_size, shuffle=False,
                                  rng=np.random.default_rng(0))
        return next(iter(batches))

    def record(self, epoch: int, record: dict, label: str) -> None:
        """One step: the probe pass's tensors and the optimizer state, now."""
        trainer, graph = self.trainer, self.trainer.graph
        params = dict(trainer.params)
        with np.errstate(all="ignore"):  # NaN and overflow are what the page shows
            run = self.executor.forward(params, self.probe, training=False,
                                        rng=trainer.backend.xp.random.default_rng(0))
            grads = self.executor.backward(run)
        values = {k: to_numpy(v) for k, v in {**params, **run.values}.items()}
        host_grads = {k: to_numpy(v) for k, v in grads.items() if v is not None}
        slots = {k: to_numpy(v) for k, v in trainer.optimizer.state_dict().items()}
        self.steps.append({"label": label, "epoch": epoch, "record": record,
                           "t": summarize_pass(graph, values, host_grads),
                           "o": summarize_slots(slots)})

    # -- the file ---------------------------------------------------------------------------
    def data(self) -> dict:
        graph = self.trainer.graph if self.trainer is not None else None
        stride = math.ceil(len(self.curve) / MAX_CURVE) if self.curve else 1
        curve = self.curve[::stride] + ([self.curve[-1]] if (len(self.curve) - 1) % stride
                                        else [])
        return {"format": FORMAT, "model": graph.name if graph else None,
                "every": self.every, "steps": self.steps, "curve": curve}

    def save(self, path) -> Path:
        """Write the trace atomically as a compressed ``.npz`` of its JSON text."""
        path = Path(path)
        check_save_target(path)
        text = json.dumps(self.data(), separators=(",", ":"), allow_nan=False)
        folder = path.parent if str(path.parent) else Path(".")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, trace=np.frombuffer(text.encode("utf-8"), np.uint8))
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # as an ordinary new file (mkstemp makes it 0600)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path


def load_trace(path, graph) -> dict:
    """A trace file written by :meth:`TraceRecorder.save`, checked against ``graph``."""
    path = Path(path)
    fail = lambda why: DataError(f"cannot read the trace {path}: {why}")  # noqa: E731
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("trace.npy")
            if info.file_size > MAX_TRACE_BYTES + 4096:
                raise fail(f"it holds {info.file_size} bytes, more than a trace may")
        with np.load(path, allow_pickle=False) as archive:
            raw = archive["trace"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise fail(str(exc) or type(exc).__name__) from None
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise fail("its 'trace' entry is not JSON text")
    try:
        data = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise fail(f"its JSON text is damaged ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise fail(f"it is not a minigraph trace (format {FORMAT})")
    if data.get("model") != graph.name:
        raise fail(f"it was recorded from model {data.get('model')!r}, not {graph.name!r}")
    steps, curve = data.get("steps"), data.get("curve")
    if not isinstance(steps, list) or not steps or not isinstance(curve, list):
        raise fail("it has no recorded steps")
    for step in steps:
        if not isinstance(step, dict) or not isinstance(step.get("t"), dict) or \
                not set(step["t"]) <= set(graph.tensors):
            raise fail("a step names tensors the model does not have")
    return data
