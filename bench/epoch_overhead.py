"""Benchmark: what one more epoch of ``minigraph run models/xor.yaml`` costs, against the bare
training step it wraps, measured in the same run.

    .venv/bin/python bench/epoch_overhead.py [--short 2000] [--long 22000] [--rounds 7]
                                             [--model models/xor.yaml] [--json-out PATH]

XOR trains on its full batch, so one epoch is one step: everything an epoch costs beyond
``Trainer.train_step`` is the loop's own work -- metrics, the epoch record, the copy of the
state at the epoch boundary, the progress bar and the epoch lines.  The marginal cost of an
epoch is the difference between ``minigraph run --epochs LONG`` and ``--epochs SHORT`` (so
start-up, loading and the final summary cancel), divided by ``LONG - SHORT``.  The bare step
is measured the same way, in a process of its own that makes the trainer and calls
``train_step`` SHORT or LONG times on the full batch.  Times are CPU seconds (user + system)
of those processes, which other processes on a shared machine disturb far less than wall
time; ``--wall`` uses wall time instead.

A shared machine still runs 2-4x slower in some minutes than in others, so the runs go in
rounds: each round runs the bare step, ``minigraph run`` with standard error on a
pseudo-terminal, and on a pipe (SHORT and LONG each), and gives one ratio per output; the
median ratio over the rounds is reported, with the lowest and highest.  Output is all on
(the default verbosity: the start line, the epoch lines, and on a terminal the live bar).

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


def timed(cmd: list, terminal: bool = False, wall: bool = False) -> float:
    """Seconds of ``cmd`` run from the repository (its output on a pseudo-terminal or a
    pipe): CPU seconds of the process, or with ``wall`` wall seconds."""
    cpu = children_seconds()
    seconds = _run(cmd, terminal)
    return seconds if wall else children_seconds() - cpu


def cli(model: str, epochs: int) -> list:
    return [sys.executable, str(Path(sys.executable).parent / "minigraph"), "run", model,
            "--epochs", str(epochs)]


def bare(model: str, steps: int) -> list:
    return [sys.executable, str(Path(__file__).resolve()), "--model", model,
            "--bare", str(steps)]


def _run(cmd: list, terminal: bool) -> float:
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


def bare_steps(model: str, steps: int) -> None:
    """``steps`` bare training steps on the model's full batch (the measured child)."""
    sys.path.insert(0, str(ROOT))
    from minigraph.api import load_graph, load_splits
    from minigraph.train import Trainer, train_config

    graph = load_graph(str(ROOT / model))
    trainer = Trainer(graph, train_config(graph), load_splits(graph))
    rng = trainer.backend.xp.random.default_rng(0)
    batch = trainer.train_data
    for _ in range(steps):
        trainer.train_step(batch, rng)


def marginal(args, make, terminal: bool = False) -> float:
    """Seconds of one more step or epoch: (LONG - SHORT) / (long - short)."""
    short = timed(make(args.model, args.short), terminal, args.wall)
    long = timed(make(args.model, args.long), terminal, args.wall)
    return (long - short) / (args.long - args.short)


def measure(args) -> dict:
    """``rounds`` rounds, each: the bare step, then an epoch on a terminal and on a pipe."""
    rounds = []
    for _ in range(args.rounds):
        step = marginal(args, bare)
        rounds.append({"step": step, "terminal": marginal(args, cli, True),
                       "pipe": marginal(args, cli, False)})
    out = {"model": args.model, "short": args.short, "long": args.long,
           "rounds": args.rounds, "clock": "wall" if args.wall else "cpu", "target": TARGET,
           "bare_step_us": statistics.median(r["step"] for r in rounds) * 1e6}
    for where in ("terminal", "pipe"):
        ratios = [r[where] / r["step"] for r in rounds]
        out[f"{where}_epoch_us"] = statistics.median(r[where] for r in rounds) * 1e6
        out[f"{where}_ratio"] = statistics.median(ratios)
        out[f"{where}_ratios"] = [round(x, 3) for x in ratios]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/xor.yaml")
    parser.add_argument("--short", type=int, default=2000)
    parser.add_argument("--long", type=int, default=22000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--wall", action="store_true", help="wall time, not CPU time")
    parser.add_argument("--json-out")
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)  # the measured child
    args = parser.parse_args()
    if args.bare is not None:
        bare_steps(args.model, args.bare)
        return 0
    out = measure(args)
    print(f"{args.model}: bare training step {out['bare_step_us']:.1f} us "
          f"({out['clock']} time, median of {args.rounds} rounds)")
    for where in ("terminal", "pipe"):
        ratio, ratios = out[f"{where}_ratio"], out[f"{where}_ratios"]
        print(f"  one more epoch of `minigraph run` ({where}): "
              f"{out[f'{where}_epoch_us']:.1f} us = {ratio:.2f}x the step "
              f"(rounds {min(ratios):.2f}x-{max(ratios):.2f}x; "
              f"{'meets' if ratio <= TARGET else 'misses'} the target <= {TARGET}x)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
