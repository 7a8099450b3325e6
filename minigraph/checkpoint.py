"""Checkpoints: params by name, optimizer state, epoch and RNG state in one ``.npz``.

Written to a temporary file in the same folder, flushed to disk, then renamed over the old
one (``os.replace`` is atomic), so a crash or Ctrl-C during a save never damages the last
good checkpoint.  Read with ``allow_pickle=False``: a checkpoint is only arrays.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backend import to_numpy
from .errors import MinigraphError


@dataclass
class Checkpoint:
    params: dict
    optimizer: dict = field(default_factory=dict)
    epoch: int | None = None
    rng_state: dict | None = None
    model: str | None = None


def save_checkpoint(path, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` atomically to ``path``."""
    path = Path(path)
    arrays = {f"param/{k}": to_numpy(v) for k, v in ckpt.params.items()}
    arrays.update({f"optim/{k}": to_numpy(v) for k, v in ckpt.optimizer.items()})
    meta = {"epoch": ckpt.epoch, "rng_state": ckpt.rng_state, "model": ckpt.model,
            "format": "minigraph-checkpoint-1"}
    arrays["meta"] = np.array(json.dumps(meta))
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise MinigraphError(f"cannot save checkpoint {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint (or a plain ``.npz`` of params keyed by name)."""
    path = Path(path)
    if not path.is_file():
        raise MinigraphError(f"no checkpoint file at {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise MinigraphError(f"{path} is not a readable .npz checkpoint ({exc})") from None
    if "meta" not in data:  # a plain archive of params by name
        return Checkpoint(params=data)
    meta = json.loads(str(data.pop("meta")))
    params = {k[6:]: v for k, v in data.items() if k.startswith("param/")}
    optim = {k[6:]: v for k, v in data.items() if k.startswith("optim/")}
    return Checkpoint(params, optim, meta.get("epoch"), meta.get("rng_state"), meta.get("model"))
