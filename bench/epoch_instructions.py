"""Benchmark: ``bench/epoch_overhead.py`` counted in CPU instructions instead of seconds.

    .venv/bin/python bench/epoch_instructions.py [--short 200] [--long 1200]
                                                 [--model models/xor.yaml]

On a shared machine CPU times jump 2-4x between phases, so a ratio measured in seconds moves
by more than most changes to the epoch loop.  Instruction counts (valgrind's callgrind, about
50x slower than a plain run) do not depend on what else the machine runs: this measures the
same ratio -- one more epoch of ``minigraph run`` against one bare ``Trainer.train_step`` --
as executed instructions, the runs' differences ``LONG - SHORT`` cancelling start-up and the
final summary.  An instruction is no fixed unit of time (NumPy's calls on tiny arrays cost
more time per instruction than the interpreter's loop), so this is a steady guide to what a
change saves, and ``epoch_overhead.py`` remains the measure of the target (<= 1.5x).
It needs ``valgrind`` on the PATH.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "COLUMNS": "100"}


def instructions(cmd: list, terminal: bool = False) -> int:
    """Instructions executed by ``cmd`` (and what it runs in its process), per callgrind;
    ``terminal``: its output goes to a pseudo-terminal (``script``) instead of a pipe."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        full = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd]
        if terminal:
            full = ["script", "-qec", " ".join(full), "/dev/null"]
        subprocess.run(full, cwd=ROOT, env=ENV, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return int(re.search(r"^summary: (\d+)", out.read_text(), re.M).group(1))


def bare_steps(model: str, steps: int) -> None:
    """``steps`` bare training steps on the model's full batch (run under valgrind)."""
    from minigraph.api import load_graph, load_splits
    from minigraph.train import Trainer, train_config

    graph = load_graph(str(ROOT / model))
    trainer = Trainer(graph, train_config(graph), load_splits(graph))
    rng = trainer.backend.xp.random.default_rng(0)
    for _ in range(steps):
        trainer.train_step(trainer.train_data, rng)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/xor.yaml")
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--long", type=int, default=1200)
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)  # the measured child
    args = parser.parse_args()
    if args.bare is not None:
        bare_steps(args.model, args.bare)
        return 0
    if shutil.which("valgrind") is None:
        print("epoch_instructions.py needs valgrind (apt-get install valgrind)")
        return 1
    python, minigraph = sys.executable, str(Path(sys.executable).parent / "minigraph")
    me = [python, str(Path(__file__).resolve()), "--model", args.model, "--bare"]
    span = args.long - args.short
    step = (instructions(me + [str(args.long)]) - instructions(me + [str(args.short)])) / span
    print(f"{args.model}: bare training step {step:,.0f} instructions")
    for where in ("terminal", "pipe"):
        runs = [instructions([python, minigraph, "run", args.model, "--epochs", str(n)],
                             where == "terminal") for n in (args.short, args.long)]
        epoch = (runs[1] - runs[0]) / span
        print(f"  one more epoch of `minigraph run` ({where}): {epoch:,.0f} instructions = "
              f"{epoch / step:.2f}x the step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
