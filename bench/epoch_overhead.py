"""Benchmark: what one more epoch of ``minigraph run models/xor.yaml`` costs, against the bare
training step it wraps, measured in the same run.

    .venv/bin/python bench/epoch_overhead.py [--short 2000] [--long 42000] [--repeats 3]
                                             [--model models/xor.yaml] [--json-out PATH]

XOR trains on its full batch, so one epoch is one step: everything an epoch costs beyond
``Trainer.train_step`` is the loop's own work -- shuffling, metrics, the epoch record, the
log, the progress bar and the epoch lines.  The marginal cost of an epoch is measured as the
difference between ``minigraph run --epochs LONG`` and ``--epochs SHORT`` (so start-up,
loading and the final summary cancel), divided by ``LONG - SHORT``; each is run ``repeats``
times and the median is kept.  Times are CPU seconds (user + system, of the run's process,
and of this one for the bare step), which other processes on a shared machine disturb far
less than wall time; ``--wall`` uses wall time instead.  It is measured with all output on
(the default verbosity, which draws the bar and writes epoch lines), once with standard error
on a pseudo-terminal and once on a pipe; the bare step is timed in this process, between the
runs.

Target: the marginal epoch costs at most 1.5x the bare step.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before NumPy is imported, here and in the runs

import argparse
import resource
import fcntl
import json
import pty
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.5


def children_seconds() -> float:
    """CPU seconds used so far by this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(model: str, epochs: int, terminal: bool, wall: bool = False) -> float:
    """Seconds of ``minigraph run MODEL --epochs N`` (output on a pty or a pipe): CPU seconds
    of the run, or with ``wall`` wall seconds."""
    cpu = children_seconds()
    seconds = _run_cli(model, epochs, terminal)
    return seconds if wall else children_seconds() - cpu


def _run_cli(model: str, epochs: int, terminal: bool) -> float:
    cmd = [sys.executable, str(Path(sys.executable).parent / "minigraph"), "run", model,
           "--epochs", str(epochs)]
    if not terminal:
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       check=True)
        return time.perf_counter() - start
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    drained = threading.Thread(target=_drain, args=(master,), daemon=True)
    drained.start()
    start = time.perf_counter()
    code = subprocess.call(cmd, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave)
    seconds = time.perf_counter() - start
    os.close(slave)
    drained.join(timeout=5)
    os.close(master)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {code}")
    return seconds


def _drain(fd: int) -> None:
    """Read a pseudo-terminal until it closes (as a terminal would display it)."""
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


def bare_step_seconds(model: str, steps: int, repeats: int, wall: bool = False) -> float:
    """Median seconds of ``Trainer.train_step`` on the model's full training batch."""
    from minigraph.api import load_graph, load_splits
    from minigraph.train import Trainer, train_config

    graph = load_graph(str(ROOT / model))
    trainer = Trainer(graph, train_config(graph), load_splits(graph))
    rng = trainer.backend.xp.random.default_rng(0)
    batch = trainer.train_data
    for _ in range(200):
        trainer.train_step(batch, rng)
    clock = time.perf_counter if wall else time.process_time
    times = []
    for _ in range(repeats):
        start = clock()
        for _ in range(steps):
            trainer.train_step(batch, rng)
        times.append((clock() - start) / steps)
    return statistics.median(times)


def measure(args) -> dict:
    runs = {"terminal": {"short": [], "long": []}, "pipe": {"short": [], "long": []}}
    bare = []
    for _ in range(args.repeats):  # interleaved, so that drifts of the machine hit all alike
        for where in ("terminal", "pipe"):
            for length in ("short", "long"):
                runs[where][length].append(run_cli(args.model, getattr(args, length),
                                                   where == "terminal", args.wall))
        bare.append(bare_step_seconds(args.model, 5000, 3, args.wall))
    step = statistics.median(bare)
    out = {"model": args.model, "short": args.short, "long": args.long,
           "repeats": args.repeats, "clock": "wall" if args.wall else "cpu",
           "bare_step_us": step * 1e6, "target": TARGET}
    for where, times in runs.items():
        epoch = (statistics.median(times["long"]) - statistics.median(times["short"])) \
            / (args.long - args.short)
        out[f"{where}_epoch_us"] = epoch * 1e6
        out[f"{where}_ratio"] = epoch / step
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/xor.yaml")
    parser.add_argument("--short", type=int, default=2000)
    parser.add_argument("--long", type=int, default=42000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wall", action="store_true", help="wall time, not CPU time")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    out = measure(args)
    print(f"{args.model}: bare training step {out['bare_step_us']:.1f} us "
          f"({out['clock']} time, median of {args.repeats})")
    for where in ("terminal", "pipe"):
        ratio = out[f"{where}_ratio"]
        print(f"  one more epoch of `minigraph run` ({where}): "
              f"{out[f'{where}_epoch_us']:.1f} us = {ratio:.2f}x the step "
              f"({'meets' if ratio <= TARGET else 'misses'} the target <= {TARGET}x)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
