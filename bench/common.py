"""Benchmark harness shared by bench/xor.py, bench/mlp.py and bench/cnn.py.

* :func:`measure` times implementations of one training step interleaved round-robin
  (A x steps, B x steps, C x steps, A x steps, ...), so that slow drifts of the machine
  (frequency, other processes) hit every implementation alike;
* :func:`check_losses` is the correctness guard run before any timing: every implementation
  starts from the same weights and must produce the same losses;
* :func:`probe_memory` runs in a fresh subprocess (``python bench/W.py --memory-probe IMPL``)
  and measures the peak memory of building the implementation and running a few steps, over a
  baseline taken after the imports and the data;
* :func:`main` is each workload script's command line: guard, timing, memory, a table and
  a JSON object.

BLAS threads are pinned to one before NumPy is imported (here and at the top of every
script), and PyTorch uses one thread (``torch_ref``), so both sides compute on one core.
"""
from __future__ import annotations

import os

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
for _var in THREAD_VARS:
    os.environ[_var] = "1"  # must happen before numpy is imported

import argparse
import datetime as _dt
import gc
import json
import math
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
IMPL_ORDER = ("numpy", "minigraph", "torch")
BASELINE = "numpy"

StepFn = Callable[[], float]          # one training step; returns the loss
Factory = Callable[[], StepFn]        # builds an implementation (params, optimizer, buffers)


# ==== the workload description ===================================================================

@dataclass
class Target:
    """A goal on the ratio minigraph / numpy: ``metric`` is "median" or "memory"."""

    metric: str
    limit: float
    what: str


@dataclass
class Workload:
    name: str                                   # xor, mlp, cnn
    title: str                                  # one line for the table
    make_data: Callable[[], tuple]              # () -> (weights, data), NumPy, seeded
    rounds: int = 10
    steps: int = 20
    warmup: int = 5
    probe_steps: int = 10
    targets: list = field(default_factory=list)
    info: dict = field(default_factory=dict)    # extra facts for the JSON (model source...)


def implementations(workload: Workload, wanted=None) -> tuple[dict, dict]:
    """({impl: module}, {impl: reason skipped}); torch is imported only when asked for."""
    wanted = list(wanted or IMPL_ORDER)
    modules, skipped = {}, {}
    for name in IMPL_ORDER:
        if name not in wanted:
            continue
        if name == "numpy":
            import numpy_ref as mod
        elif name == "minigraph":
            try:
                import minigraph_impl as mod
            except Exception as exc:  # an engine mid-rewrite should not hide the others
                skipped[name] = f"minigraph failed to import ({exc.__class__.__name__}: {exc})"
                continue
        else:
            import torch_ref as mod
            if not mod.AVAILABLE:
                skipped[name] = mod.REASON
                continue
        modules[name] = mod
    return modules, skipped


def factories(workload: Workload, modules: dict, weights, data) -> dict:
    return {name: (lambda m=mod: m.WORKLOADS[workload.name](weights, data))
            for name, mod in modules.items()}


# ==== machine facts ==============================================================================

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas() -> str:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy
        return "unknown"


def _git() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except Exception:
            return ""
    commit = git("rev-parse", "--short", "HEAD")
    changes = [ln[3:] for ln in git("status", "--porcelain", "--", "minigraph").splitlines()]
    return {"commit": commit or None, "minigraph_dirty": bool(changes),
            "minigraph_changes": changes}


def machine_info(torch_version=None) -> dict:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "blas": _blas(),
        "torch": torch_version,
        "threads": {v: os.environ.get(v) for v in THREAD_VARS},
        "git": _git(),
    }


# ==== timing =====================================================================================

def measure(impls: dict, rounds: int, steps_per_round: int, warmup: int,
            built: dict | None = None) -> dict:
    """Time one training step of each implementation, interleaved round-robin.

    ``impls`` maps a name to a factory (``() -> step``, ``step() -> loss``).  Every
    implementation is built, warmed up with ``warmup`` steps, then each of ``rounds`` rounds
    runs ``steps_per_round`` steps of each implementation in turn, starting one further
    each round (ABC BCA CAB ...).  Each step is
    timed on its own (``perf_counter``); the result per implementation holds the per-step
    ``median``, ``min``, ``mean``, ``p90`` and ``stdev`` (seconds), the per-round medians,
    and ``ratio_median`` / ``ratio_min`` / ``ratio_paired`` relative to the ``numpy``
    implementation (paired: the median over rounds of the two round medians' ratio).
    """
    steps = dict(built or {})
    for name, factory in impls.items():
        if name not in steps:
            steps[name] = factory()
    for step in steps.values():
        for _ in range(warmup):
            step()
    # Move everything alive now (modules, models, buffers) out of the collector's sight: the
    # per-block collect below is then cheap, and collections the steps trigger themselves do
    # not scan the other implementations' objects (with torch imported that is ~0.2 s each).
    gc.collect()
    gc.freeze()
    times = {name: [] for name in steps}
    round_medians = {name: [] for name in steps}
    clock = time.perf_counter
    order = list(steps.items())
    for r in range(rounds):
        # each round starts with the next implementation, so none always runs right after
        # the same other one (whose data it would find in, or push out of, the caches)
        for name, step in order[r % len(order):] + order[:r % len(order)]:
            gc.collect()  # start every block from the same collector state (not timed)
            block = []
            for _ in range(steps_per_round):
                t0 = clock()
                step()
                block.append(clock() - t0)
            times[name].extend(block)
            round_medians[name].append(statistics.median(block))
    gc.unfreeze()
    out = {}
    for name, ts in times.items():
        ts_sorted = sorted(ts)
        out[name] = {
            "median_s": statistics.median(ts),
            "min_s": ts_sorted[0],
            "mean_s": statistics.fmean(ts),
            "p90_s": ts_sorted[min(len(ts) - 1, int(0.9 * len(ts)))],
            "stdev_s": statistics.stdev(ts) if len(ts) > 1 else 0.0,
            "steps_timed": len(ts),
            "round_medians_s": round_medians[name],
        }
    base = out.get(BASELINE)
    for r in out.values():
        r["ratio_median"] = r["median_s"] / base["median_s"] if base else None
        r["ratio_min"] = r["min_s"] / base["min_s"] if base else None
        # paired: each round's median over numpy's median of the same round, then the median
        # of those ratios.  Robust where the machine switches between fast and slow phases
        # (then the overall medians can land in different phases).
        r["ratio_paired"] = statistics.median(
            a / b for a, b in zip(r["round_medians_s"], base["round_medians_s"])) \
            if base else None
    return out


# ==== the correctness guard ======================================================================

def check_losses(impls: dict, steps: int = 3, rtol_first: float = 1e-4,
                 rtol_later: float = 1e-3) -> dict:
    """Build every implementation afresh (same weights), run ``steps`` steps, compare losses.

    Step 1 (same weights, same batch) must agree within ``rtol_first`` relative to the numpy
    loss; later steps (which also test the gradients and the optimizer update) within
    ``rtol_later``.
    """
    losses = {}
    for name, factory in impls.items():
        step = factory()
        losses[name] = [float(step()) for _ in range(steps)]
        del step
        gc.collect()
    ref = losses.get(BASELINE) or next(iter(losses.values()))
    worst = [0.0] * steps
    for ls in losses.values():
        for i, (a, b) in enumerate(zip(ls, ref)):
            worst[i] = max(worst[i], abs(a - b) / max(abs(b), 1e-12))
    finite = all(math.isfinite(v) for ls in losses.values() for v in ls)
    ok = finite and worst[0] <= rtol_first and all(w <= rtol_later for w in worst[1:])
    return {"ok": ok, "losses": losses, "max_rel_diff_per_step": worst,
            "rtol_first": rtol_first, "rtol_later": rtol_later}


# ==== memory =====================================================================================

def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def probe_memory(factory: Factory, steps: int, mode: str) -> dict:
    """Run in a fresh process, after the imports and the data: build, run ``steps`` steps.

    mode ``rss``: growth of the peak resident set over the baseline.  On Linux the peak mark
    (VmHWM) is reset at the baseline (``/proc/self/clear_refs``), because ``ru_maxrss`` of a
    child process can start at its parent's size; ``ru_maxrss`` growth is reported too.
    mode ``tracemalloc``: the peak of memory traced by ``tracemalloc`` (Python objects and
    NumPy array data, which NumPy reports to it; not PyTorch tensors).  A separate process,
    because tracing costs memory of its own that would inflate the RSS.
    """
    gc.collect()
    result = {"mode": mode, "steps": steps}
    if mode == "rss":
        reset = _reset_peak_rss()
        base_rss_kb = _status_kb("VmRSS")
        base_maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step = factory()
        for _ in range(steps):
            step()
        peak_kb = _status_kb("VmHWM")
        maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["ru_maxrss_growth_bytes"] = (maxrss_kb - base_maxrss_kb) * 1024
        if reset and peak_kb is not None and base_rss_kb is not None:
            result["rss_peak_growth_bytes"] = (peak_kb - base_rss_kb) * 1024
            result["rss_method"] = "VmHWM after clear_refs"
        else:
            result["rss_peak_growth_bytes"] = result["ru_maxrss_growth_bytes"]
            result["rss_method"] = "ru_maxrss"
    else:
        tracemalloc.start()
        step = factory()
        for _ in range(steps):
            step()
        result["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result


def run_memory_probes(script: Path, names: list, steps: int, torch_names=("torch",)) -> dict:
    """One subprocess per (implementation, mode); returns {impl: {...memory numbers...}}."""
    out = {}
    for name in names:
        modes = ["rss"] if name in torch_names else ["rss", "tracemalloc"]
        merged = {}
        for mode in modes:
            cmd = [sys.executable, str(script), "--memory-probe", name, "--probe-mode", mode,
                   "--probe-steps", str(steps)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            line = next((ln for ln in proc.stdout.splitlines()
                         if ln.startswith("MEMORY_PROBE ")), None)
            if proc.returncode != 0 or line is None:
                merged["error"] = (proc.stderr or proc.stdout).strip()[-500:]
                break
            merged.update(json.loads(line[len("MEMORY_PROBE "):]))
        merged.pop("mode", None)
        out[name] = merged
    base = out.get(BASELINE, {})
    for r in out.values():
        for key, ratio in (("rss_peak_growth_bytes", "ratio_rss"),
                           ("tracemalloc_peak_bytes", "ratio_tracemalloc")):
            if key in r and base.get(key):
                r[ratio] = r[key] / base[key]
    return out


# ==== formatting =================================================================================

def fmt_time(seconds) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def fmt_bytes(n) -> str:
    if n is None:
        return "-"
    if abs(n) < 2**20:
        return f"{n / 2**10:.0f} KiB"
    return f"{n / 2**20:.1f} MiB"


def fmt_ratio(r) -> str:
    return "-" if r is None else f"{r:.2f}x"


def evaluate_targets(workload: Workload, results: dict) -> list:
    mg = results.get("minigraph", {})
    rows = []
    for t in workload.targets:
        if t.metric == "median":
            value = mg.get("ratio_paired")
            rows.append({"what": t.what, "metric": "step time, minigraph / numpy, paired",
                         "limit": t.limit, "value": value,
                         "ok": None if value is None else value <= t.limit})
        elif t.metric == "memory":
            mem = mg.get("memory", {})
            for key, label in (("ratio_rss", "peak RSS growth"),
                               ("ratio_tracemalloc", "tracemalloc peak")):
                value = mem.get(key)
                rows.append({"what": t.what, "metric": f"{label}, minigraph / numpy",
                             "limit": t.limit, "value": value,
                             "ok": None if value is None else value <= t.limit})
    return rows


def ratio_cells(r: dict) -> str:
    """The ratio and memory columns of one implementation's row (both tables)."""
    mem = r.get("memory", {})
    return (f"{fmt_ratio(r['ratio_median']):>7} {fmt_ratio(r['ratio_min']):>7} "
            f"{fmt_ratio(r.get('ratio_paired')):>7} "
            f"{fmt_bytes(mem.get('rss_peak_growth_bytes')):>10} "
            f"{fmt_ratio(mem.get('ratio_rss')):>7} "
            f"{fmt_bytes(mem.get('tracemalloc_peak_bytes')):>11} "
            f"{fmt_ratio(mem.get('ratio_tracemalloc')):>6}")


def table(report: dict) -> str:
    """The fixed-width table of one workload's report."""
    lines = []
    cfg = report["config"]
    lines.append(f"== {report['workload']}: {report['title']}")
    if report.get("model_source"):
        lines.append(f"   minigraph model: {report['model_source']}")
    lines.append(f"   {cfg['rounds']} rounds x {cfg['steps_per_round']} steps per impl "
                 f"(+{cfg['warmup']} warmup), interleaved; per-step times; BLAS threads "
                 f"{report['machine']['threads'].get('OPENBLAS_NUM_THREADS')}")
    guard = report.get("guard")
    if guard:
        first = ", ".join(f"{k} {v[0]:.6g}" for k, v in guard["losses"].items())
        diffs = ", ".join(f"{d:.1e}" for d in guard["max_rel_diff_per_step"])
        verdict = "losses agree" if guard["ok"] else "LOSSES DISAGREE"
        lines.append(f"   {verdict}: step-1 loss {first}; max rel diff per step [{diffs}]")
    for name, why in report.get("skipped", {}).items():
        lines.append(f"   skipped {name}: {why}")
    head = (f"{'impl':<10} {'median':>10} {'min':>10} {'mean':>10} {'p90':>10} "
            f"{'med/np':>7} {'min/np':>7} {'paired':>7} {'peak RSS':>10} {'RSS/np':>7} "
            f"{'tracemalloc':>11} {'tm/np':>6}")
    lines.append(head)
    lines.append("-" * len(head))
    for name, r in report["results"].items():
        mem = r.get("memory", {})
        lines.append(
            f"{name:<10} {fmt_time(r['median_s']):>10} {fmt_time(r['min_s']):>10} "
            f"{fmt_time(r['mean_s']):>10} {fmt_time(r['p90_s']):>10} " + ratio_cells(r))
        if "error" in mem:
            lines.append(f"   memory probe of {name} failed: {mem['error']}")
    for t in report.get("targets", []):
        mark = "-" if t["ok"] is None else ("ok" if t["ok"] else "MISS")
        value = "-" if t["value"] is None else f"{t['value']:.3f}x"
        lines.append(f"   target {t['what']}: {t['metric']} {value} "
                     f"(<= {t['limit']:.2f}x) {mark}")
    return "\n".join(lines)


# ==== the command line of a workload script ======================================================

def parse_args(workload: Workload, argv=None):
    p = argparse.ArgumentParser(description=f"Benchmark one training step: {workload.title}")
    p.add_argument("--rounds", type=int, default=workload.rounds,
                   help=f"interleaved rounds (default {workload.rounds})")
    p.add_argument("--steps", type=int, default=workload.steps,
                   help=f"steps per implementation per round (default {workload.steps})")
    p.add_argument("--warmup", type=int, default=workload.warmup,
                   help=f"untimed steps per implementation first (default {workload.warmup})")
    p.add_argument("--impls", default=",".join(IMPL_ORDER),
                   help="comma-separated subset of numpy,minigraph,torch")
    p.add_argument("--json", action="store_true", help="print the JSON object to stdout")
    p.add_argument("--json-out", metavar="PATH", help="write the JSON object to PATH")
    p.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    p.add_argument("--no-guard", action="store_true",
                   help="time even if the losses disagree (the guard still runs and reports)")
    p.add_argument("--probe-steps", type=int, default=workload.probe_steps,
                   help=f"steps run by a memory probe (default {workload.probe_steps})")
    # internal: the memory probe subprocess
    p.add_argument("--memory-probe", metavar="IMPL", help=argparse.SUPPRESS)
    p.add_argument("--probe-mode", choices=("rss", "tracemalloc"), default="rss",
                   help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(workload: Workload, script: str, argv=None) -> int:
    args = parse_args(workload, argv)
    script = Path(script).resolve()

    if args.memory_probe:  # the subprocess: imports, data, baseline, build, steps
        modules, skipped = implementations(workload, [args.memory_probe])
        if args.memory_probe not in modules:
            print(skipped.get(args.memory_probe, "unknown implementation"), file=sys.stderr)
            return 2
        weights, data = workload.make_data()
        factory = factories(workload, modules, weights, data)[args.memory_probe]
        result = probe_memory(factory, args.probe_steps, args.probe_mode)
        print("MEMORY_PROBE " + json.dumps(result), flush=True)
        return 0

    wanted = [s.strip() for s in args.impls.split(",") if s.strip()]
    modules, skipped = implementations(workload, wanted)
    torch_version = modules["torch"].version() if "torch" in modules else None
    weights, data = workload.make_data()
    impls = factories(workload, modules, weights, data)
    report = {
        "workload": workload.name,
        "title": workload.title,
        "model_source": workload.info.get("model_source"),
        "config": {"rounds": args.rounds, "steps_per_round": args.steps,
                   "warmup": args.warmup, "probe_steps": args.probe_steps,
                   **{k: v for k, v in workload.info.items() if k != "model_source"}},
        "machine": machine_info(torch_version),
        "skipped": skipped,
    }
    for name, why in skipped.items():
        print(f"[{workload.name}] skipping {name}: {why}", flush=True)

    guard = check_losses(impls)
    report["guard"] = guard
    if guard["ok"]:
        print(f"[{workload.name}] losses agree (step 1: "
              + ", ".join(f"{k} {v[0]:.6f}" for k, v in guard["losses"].items()) + ")",
              flush=True)
    else:
        print(f"[{workload.name}] LOSSES DISAGREE: {json.dumps(guard['losses'])}; "
              f"max rel diff per step {guard['max_rel_diff_per_step']}", flush=True)
        if not args.no_guard:
            print(f"[{workload.name}] refusing to time implementations that compute different "
                  "things (pass --no-guard to time anyway)", file=sys.stderr)
            _emit(report, args)
            return 1

    t0 = time.perf_counter()
    report["results"] = measure(impls, args.rounds, args.steps, args.warmup)
    report["timing_seconds"] = time.perf_counter() - t0
    if not args.no_memory:
        memory = run_memory_probes(script, list(report["results"]), args.probe_steps)
        for name, mem in memory.items():
            report["results"][name]["memory"] = mem
    report["targets"] = evaluate_targets(workload, report["results"])
    print(table(report), flush=True)
    _emit(report, args)
    return 0


def _emit(report: dict, args) -> None:
    text = json.dumps(report, indent=2)
    if args.json:
        print(text)
    if args.json_out:
        path = Path(args.json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")


# ==== shared data helpers ========================================================================

def uniform_weight(rng, shape, fan_in, fan_out, kind="xavier"):
    """Float32 weights; ``he``: U(±sqrt(6/fan_in)), ``xavier``: U(±sqrt(6/(fan_in+fan_out)))."""
    bound = math.sqrt(6 / fan_in) if kind == "he" else math.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def small_bias(rng, n):
    """Small non-zero biases, so the guard also checks that biases are added the same way."""
    return rng.uniform(-0.1, 0.1, size=n).astype(np.float32)


def mnist_like(rng, n, image=False):
    """Random MNIST-shaped data: x U[0, 1) (n, 784) or (n, 1, 28, 28), labels int64 0..9."""
    shape = (n, 1, 28, 28) if image else (n, 784)
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, 10, size=n, dtype=np.int64)
    return {"x": x, "y": y}
