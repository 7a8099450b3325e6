"""Benchmark: what one more epoch of ``minigraph run models/xor.yaml`` costs, against the bare
training step it wraps, measured in the same run.

    .venv/bin/python bench/epoch_overhead.py [--short 2000] [--long 12000] [--rounds 30]
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

A shared machine still runs 2-4x slower in some seconds than in others, so the runs go in
rounds: each round runs the bare step, ``minigraph run`` with standard error on a
pseudo-terminal, and on a pipe (SHORT and LONG each).  Disturbances only add time, so each
kind and length is taken at its least over the rounds (as ``timeit`` takes the least of its
repeats) and the ratio is made of those; each round's own ratio is printed too (lowest,
highest, median), to show how much the machine moved.  Output is all on (the default
verbosity: the start line, the epoch lines, and on a terminal the live bar).

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


def measure(args) -> dict:
    """``rounds`` rounds, each running the bare step, then ``minigraph run`` on a terminal
    and on a pipe, SHORT and LONG each."""
    kinds = {"step": (bare, False), "terminal": (cli, True), "pipe": (cli, False)}
    runs = {kind: {"short": [], "long": []} for kind in kinds}
    for _ in range(args.rounds):
        for kind, (make, terminal) in kinds.items():
            for length in ("short", "long"):
                runs[kind][length].append(timed(make(args.model, getattr(args, length)),
                                                terminal, args.wall))
    span = args.long - args.short
    out = {"model": args.model, "short": args.short, "long": args.long,
           "rounds": args.rounds, "clock": "wall" if args.wall else "cpu", "target": TARGET}
    # the least disturbed run of each kind and length (disturbances only add time, so the
    # minimum is the estimate, as timeit takes it), and each round's own ratio
    least = {kind: (min(t["long"]) - min(t["short"])) / span for kind, t in runs.items()}
    each = {kind: [(b - a) / span for a, b in zip(t["short"], t["long"])]
            for kind, t in runs.items()}
    out["bare_step_us"] = least["step"] * 1e6
    for where in ("terminal", "pipe"):
        out[f"{where}_epoch_us"] = least[where] * 1e6
        out[f"{where}_ratio"] = least[where] / least["step"]
        ratios = [e / s for e, s in zip(each[where], each["step"])]
        out[f"{where}_round_ratios"] = [round(r, 3) for r in ratios]
        out[f"{where}_median_round_ratio"] = statistics.median(ratios)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/xor.yaml")
    parser.add_argument("--short", type=int, default=2000)
    parser.add_argument("--long", type=int, default=12000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--wall", action="store_true", help="wall time, not CPU time")
    parser.add_argument("--json-out")
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)  # the measured child
    args = parser.parse_args()
    if args.bare is not None:
        bare_steps(args.model, args.bare)
        return 0
    out = measure(args)
    print(f"{args.model}: bare training step {out['bare_step_us']:.1f} us "
          f"({out['clock']} time, the least of {args.rounds} runs)")
    for where in ("terminal", "pipe"):
        ratio, rounds = out[f"{where}_ratio"], out[f"{where}_round_ratios"]
        print(f"  one more epoch of `minigraph run` ({where}): "
              f"{out[f'{where}_epoch_us']:.1f} us = {ratio:.2f}x the step "
              f"({'meets' if ratio <= TARGET else 'misses'} the target <= {TARGET}x); "
              f"round by round {min(rounds):.2f}x-{max(rounds):.2f}x, "
              f"median {out[f'{where}_median_round_ratio']:.2f}x")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
