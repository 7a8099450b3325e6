"""Run every benchmark (XOR, MLP, CNN), print a combined table, write bench/results/latest.json.

    make bench
    .venv/bin/python bench/run_all.py [--only xor,mlp] [--quick] [--json-out PATH]

Each workload runs in its own process (``bench/<name>.py --json-out ...``), so one
workload's allocations and imports do not shape the next one's numbers; its own table is
printed as it finishes.  ``--quick`` divides every workload's rounds by 4 (a smoke test,
not numbers to quote).  Extra options after ``--`` are passed to every workload script.
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before NumPy is imported (inherited by the workload scripts)

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH_DIR, fmt_time, machine_info, ratio_cells

WORKLOADS = ("xor", "mlp", "cnn", "lstm")
DEFAULT_OUT = BENCH_DIR / "results" / "latest.json"


def torch_version():
    """PyTorch's version without importing it here (a subprocess; None if absent)."""
    try:
        from importlib.metadata import version
        return version("torch")
    except Exception:
        return None


def combined_table(machine: dict, reports: dict, failed: dict) -> str:
    lines = [
        "== minigraph benchmarks",
        f"   {machine['date']}  {machine['cpu']}  ({machine['cores']} cores, "
        f"{machine['cores_usable']} usable)",
        f"   python {machine['python']}  numpy {machine['numpy']} ({machine['blas']})  "
        f"torch {machine['torch'] or 'not installed'}",
        "   BLAS threads: " + ", ".join(f"{k}={v}" for k, v in machine["threads"].items())
        + "; torch threads 1",
        f"   git {machine['git']['commit']}"
        + (" + uncommitted changes in: " + ", ".join(machine["git"]["minigraph_changes"])
           if machine["git"]["minigraph_dirty"] else ""),
    ]
    head = (f"{'workload':<9} {'impl':<10} {'median':>10} {'min':>10} {'med/np':>7} "
            f"{'min/np':>7} {'paired':>7} {'peak RSS':>10} {'RSS/np':>7} {'tracemalloc':>11} "
            f"{'tm/np':>6}")
    lines += [head, "-" * len(head)]
    for name, rep in reports.items():
        guard = rep.get("guard", {})
        for impl, r in rep.get("results", {}).items():
            lines.append(
                f"{name:<9} {impl:<10} {fmt_time(r['median_s']):>10} {fmt_time(r['min_s']):>10} "
                + ratio_cells(r))
        if guard and not guard.get("ok"):
            lines.append(f"{name:<9} LOSSES DISAGREE: {json.dumps(guard.get('losses'))}")
        for impl, why in rep.get("skipped", {}).items():
            lines.append(f"{name:<9} {impl:<10} skipped: {why}")
    for name, why in failed.items():
        lines.append(f"{name:<9} FAILED: {why}")
    targets = [(name, t) for name, rep in reports.items() for t in rep.get("targets", [])]
    if targets:
        lines.append("targets (minigraph / numpy, same run):")
        for name, t in targets:
            mark = "-" if t["ok"] is None else ("ok" if t["ok"] else "MISS")
            value = "-" if t["value"] is None else f"{t['value']:.3f}x"
            lines.append(f"   {t['what']:<16} {t['metric']:<42} {value:>7} "
                         f"<= {t['limit']:.2f}x  {mark}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(WORKLOADS),
                   help="comma-separated subset of xor,mlp,cnn")
    p.add_argument("--quick", action="store_true", help="a quarter of the rounds (smoke test)")
    p.add_argument("--json-out", default=str(DEFAULT_OUT),
                   help=f"where to write the combined JSON (default {DEFAULT_OUT})")
    p.add_argument("extra", nargs="*", help="options passed to every workload script "
                                            "(after --)")
    args = p.parse_args(argv)
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    machine = machine_info(torch_version())
    reports, failed = {}, {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in only:
            if name not in WORKLOADS:
                print(f"unknown workload '{name}'; choose from {', '.join(WORKLOADS)}",
                      file=sys.stderr)
                return 2
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, str(BENCH_DIR / f"{name}.py"), "--json-out", str(out),
                   *args.extra]
            if args.quick:
                cmd += _quick_options(name)
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=os.environ.copy())
            print(f"   ({name}: {time.perf_counter() - t0:.1f} s)\n", flush=True)
            if out.exists():
                reports[name] = json.loads(out.read_text())
            if proc.returncode != 0:
                failed[name] = f"exit status {proc.returncode}"
    print(combined_table(machine, reports, failed))
    result = {"machine": machine, "workloads": reports, "failed": failed,
              "seconds": time.perf_counter() - start}
    path = Path(args.json_out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 1 if failed else 0


def _quick_options(name):
    import importlib
    workload = importlib.import_module(name).WORKLOAD
    return ["--rounds", str(max(2, workload.rounds // 4)), "--warmup", "1"]


if __name__ == "__main__":
    sys.exit(main())
