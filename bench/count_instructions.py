"""Instructions per training step, counted by valgrind: a measure that does not move with
the machine's load, for comparing two versions of the code (the clock scatters by a few
percent between runs on a shared machine; this count by well under 1%).

    .venv/bin/python bench/count_instructions.py xor                # minigraph
    .venv/bin/python bench/count_instructions.py mlp --impl numpy --steps 20

The step runs under ``valgrind --tool=cachegrind`` twice, ``--steps`` times and not at all
(after the same set-up and warm-up), and the difference is divided by ``--steps``.  Slow:
about 50x the step time.  Fewer instructions is not always faster (a GEMM's are cheap, an
interpreter's after a GEMM are not), so use it beside the timings, not instead.
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

DEFAULT_STEPS = {"xor": 1000, "mlp": 20, "cnn": 2, "lstm": 10}


def child(workload: str, impl: str, steps: int) -> None:
    from common import factories, implementations

    spec = importlib.import_module(workload).WORKLOAD
    modules, skipped = implementations(spec, [impl])
    if impl in skipped:
        sys.exit(f"{impl}: {skipped[impl]}")
    weights, data = spec.make_data()
    step = factories(spec, modules, weights, data)[impl]()
    for _ in range(3):
        step()
    for _ in range(steps):
        step()


def count(workload: str, impl: str, steps: int) -> int:
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, __file__, "--child", workload, impl, str(steps)]
    env = dict(os.environ, PYTHONHASHSEED="0")  # same dict layouts in both runs
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode != 0 or not found:
        sys.exit(f"valgrind run failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="instructions per training step, by valgrind")
    p.add_argument("workload", nargs="?", choices=sorted(DEFAULT_STEPS))
    p.add_argument("--impl", default="minigraph", choices=("minigraph", "numpy", "torch"))
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    if args.workload is None:
        p.error("the workload is required (xor, mlp or cnn)")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing to count (apt install valgrind)",
              file=sys.stderr)
        return 2
    steps = args.steps or DEFAULT_STEPS[args.workload]
    total, base = count(args.workload, args.impl, steps), count(args.workload, args.impl, 0)
    print(f"{args.workload} {args.impl}: {(total - base) / steps:,.0f} instructions per step "
          f"({steps} steps)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
