"""Data-parallel speed-up: an epoch of mnist_cnn on a 6,000-image subset with 1 and 2 ranks.

    .venv/bin/python bench/distributed.py [--ranks 1,2] [--epochs 2] [--images 6000]
                                          [--json-out PATH]

Each rank count runs as ``mpiexec -n R python bench/distributed.py --worker ...`` with one
BLAS thread per rank; every rank trains the same global batches (batch 100, Adam) through
:class:`~minigraph.distributed.DataParallelTrainer`, after one warm-up epoch.  Printed per
rank count: the median epoch time, the speed-up over one rank, and the time spent in the
gradient ``Allreduce`` (rank 0's).  The machine's load average is printed before and after,
since other processes on the same cores change the numbers.  Target: >= 1.7x on 2 ranks on a
2-core machine; more ranks than cores is slower, not faster.

MNIST is read from ``$MINIGRAPH_DATA`` (or ../shared/datasets/mnist); without it, random
MNIST-shaped data of the same size is used (the timing does not depend on the values).
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one BLAS thread per rank, before NumPy is imported

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "mnist_cnn.yaml"


def subset(graph, images: int) -> dict:
    """``images`` training examples: MNIST when found, else random MNIST-shaped data."""
    from minigraph.api import load_splits
    from minigraph.errors import MinigraphError

    folder = os.environ.get("MINIGRAPH_DATA") or str(ROOT.parent / "shared/datasets/mnist")
    try:
        train = load_splits(graph, folder).train
        return {k: v[:images] for k, v in train.items()}
    except MinigraphError:
        rng = np.random.default_rng(0)
        return {"x": rng.random((images, 1, 28, 28), dtype=np.float32),
                "label": rng.integers(0, 10, images)}


def worker(args) -> None:
    from minigraph.api import load_graph
    from minigraph.data import DataSplits
    from minigraph.distributed import DataParallelTrainer, join_job
    from minigraph.train import train_config

    job = join_job()
    graph = load_graph(str(MODEL))
    config = train_config(graph, {"epochs": args.epochs + 1, "batch_size": 100})
    trainer = DataParallelTrainer(graph, config, DataSplits(subset(graph, args.images), None),
                                  job=job)
    epochs, allreduce = [], []
    for epoch in range(args.epochs + 1):
        job.comm.Barrier()
        start, summed = time.perf_counter(), job.allreduce_seconds
        record = trainer.train_epoch()
        if epoch:  # the first epoch warms up (allocations, caches)
            epochs.append(time.perf_counter() - start)
            allreduce.append(job.allreduce_seconds - summed)
    if job.rank == 0:
        Path(args.json_out).write_text(json.dumps({
            "ranks": job.size, "epoch_seconds": epochs, "allreduce_seconds": allreduce,
            "loss": record["loss"], "params": int(trainer.params.flat.size)
            if hasattr(trainer.params, "flat") else None}))


def launch(ranks: int, args, folder: Path) -> dict:
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
    out = folder / f"ranks{ranks}.json"
    subprocess.run([mpiexec, "-n", str(ranks), sys.executable, __file__, "--worker",
                    "--epochs", str(args.epochs), "--images", str(args.images),
                    "--json-out", str(out)], stdin=subprocess.DEVNULL, check=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after 1 warm-up)")
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--json-out")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for ranks in map(int, args.ranks.split(",")):
            results[ranks] = launch(ranks, args, Path(folder))
    load_after = os.getloadavg()
    base = statistics.median(results[min(results)]["epoch_seconds"])
    print(f"mnist_cnn, {args.images} images, batch 100, Adam; {os.cpu_count()} cores; "
          f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    print(f"{'ranks':>5}  {'epoch s':>8}  {'speed-up':>8}  {'Allreduce s':>11}  {'share':>6}")
    for ranks, r in results.items():
        epoch = statistics.median(r["epoch_seconds"])
        reduce = statistics.median(r["allreduce_seconds"])
        print(f"{ranks:>5}  {epoch:8.2f}  {base / epoch:7.2f}x  {reduce:11.3f}  "
              f"{reduce / epoch:6.1%}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "results": results, "load_before": load_before, "load_after": load_after,
            "cores": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    main()
