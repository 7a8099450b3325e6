"""Profile one implementation's training step with cProfile: where does the time go?

    .venv/bin/python bench/profile_step.py cnn                 # minigraph, top 15 by tottime
    .venv/bin/python bench/profile_step.py mlp --steps 200 --top 25 --sort cumtime
    .venv/bin/python bench/profile_step.py xor --impl numpy

The implementation is built and warmed up first (not profiled); then ``--steps`` steps run
under the profiler.  cProfile adds a cost per Python call, so engines that make many small
calls look relatively slower under it than they are; use it for where, not for how much.
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import cProfile
import importlib
import io
import pstats
import sys

from common import factories, implementations

DEFAULT_STEPS = {"xor": 2000, "mlp": 100, "cnn": 10}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="cProfile one training step implementation")
    p.add_argument("workload", choices=sorted(DEFAULT_STEPS))
    p.add_argument("--impl", default="minigraph", choices=("numpy", "minigraph", "torch"))
    p.add_argument("--steps", type=int, help="profiled steps (default: xor 2000, mlp 100, "
                                             "cnn 10)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumtime, ...)")
    p.add_argument("--out", help="also save the raw profile here (for snakeviz etc.)")
    args = p.parse_args(argv)
    workload = importlib.import_module(args.workload).WORKLOAD
    modules, skipped = implementations(workload, [args.impl])
    if args.impl not in modules:
        print(f"{args.impl} unavailable: {skipped.get(args.impl)}", file=sys.stderr)
        return 2
    weights, data = workload.make_data()
    step = factories(workload, modules, weights, data)[args.impl]()
    for _ in range(args.warmup):
        step()
    steps = args.steps or DEFAULT_STEPS[args.workload]
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    if args.out:
        prof.dump_stats(args.out)
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(args.sort)
    total = stats.total_tt
    print(f"{args.impl} {args.workload}: {steps} steps, {total:.3f} s under cProfile "
          f"({total / steps * 1e3:.3f} ms per step)")
    stats.print_stats(args.top)
    print(buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
