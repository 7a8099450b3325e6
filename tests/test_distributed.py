"""Data-parallel training on MPI (``--distributed``; minigraph/distributed/).

The job tests launch ``mpiexec -n 2`` and ``-n 3`` in subprocesses (with timeouts: a hang
fails, it never blocks the suite) and check, for xor, circles, the sum-reduced perceptron and
a 1,000-image mnist_cnn subset: the params are bit-identical on every rank, and equal to a
single process with the same global batch within ``RTOL`` relative (max |a - b| / max |b|
per param; measured: at most 1.3e-6 here, float32 re-association; see README); uneven shares and global
batches smaller than the job; ``--save`` then ``--load`` under MPI; a failing rank ends the
job with exit 1.  They skip, saying why, without mpi4py and ``mpiexec`` (``minigraph[mpi]``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from minigraph.api import run_model
from minigraph.backend import to_numpy
from minigraph.checkpoint import load_checkpoint

from conftest import mnist_dir

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "mpi_worker.py"
RTOL = 1e-5
TIMEOUT = 300  # seconds: a guard against a hanging job on a loaded machine, not a speed test


def mpiexec() -> str:
    """The ``mpiexec`` beside this Python (the mpich wheel), or skip saying why."""
    pytest.importorskip("mpi4py", reason="mpi4py is not installed: pip install "
                                         "'minigraph[mpi]' to run the MPI tests")
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) \
        or shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec found (the mpich wheel of minigraph[mpi] installs one)")
    return found


def launch(ranks: int, *args, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    env.pop("MINIGRAPH_BACKEND", None)
    return subprocess.run([mpiexec(), "-n", str(ranks), *map(str, args)], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def model_file(tmp_path: Path, name: str, data=None, **train) -> Path:
    """models/NAME.yaml with its data and train sections changed."""
    spec = yaml.safe_load((ROOT / "models" / f"{name}.yaml").read_text())
    spec["data"] = data or spec["data"]
    spec["train"] = {**spec["train"], **train}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def relative_error(got: dict, want: dict) -> float:
    return max(float(np.max(np.abs(got[k] - want[k])) / max(np.max(np.abs(want[k])), 1e-30))
               for k in want)


def single_process(model: Path, **overrides):
    result = run_model(str(model), **overrides)
    return ({k: to_numpy(v) for k, v in result.trainer.params.items()},
            result.history.records)


def mnist_subset(tmp_path):
    folder = mnist_dir()
    if folder is None:
        pytest.skip("MNIST data not found (set MINIGRAPH_DATA to the folder of the IDX files)")
    data = {"train": {"dataset": "mnist", "split": "train", "limit": 1000},
            "test": {"dataset": "mnist", "split": "test", "limit": 300}}
    # SGD with momentum: Adam magnifies float re-association in near-zero gradients (its
    # params differ from one process by ~1e-4 relative here, as much as between the same
    # single-process run with kernels on and off)
    sgd = {"type": "momentum", "lr": 0.05, "momentum": 0.9}
    return model_file(tmp_path, "mnist_cnn", data, epochs=2, batch_size=128,
                      optimizer=sgd), folder


CASES = {  # name: (model, ranks, train-section changes)
    "xor-2-full-batch-other-init-off-rank-0": ("xor", 2, {"epochs": 300}),
    "xor-3-last-batch-smaller-than-job": ("xor", 3, {"epochs": 300, "batch_size": 3}),
    "circles-2-full-batch": ("circles", 2, {"epochs": 40}),
    "circles-3-uneven-shares": ("circles", 3, {"epochs": 8, "batch_size": 64}),
    "perceptron-3-sum-loss-stop-at": ("or_perceptron", 3, {}),
}


@pytest.mark.parametrize("case", list(CASES) + ["mnist_cnn-2", "mnist_cnn-3"])
def test_ranks_agree_and_equal_a_single_process(case, tmp_path):
    mpiexec()
    overrides = {}
    if case.startswith("mnist_cnn"):
        model, folder = mnist_subset(tmp_path)
        ranks, overrides = int(case[-1]), {"data_dir": folder}
    else:
        name, ranks, train = CASES[case]
        data = {"train": {"generator": "circles", "n": 500, "noise": 0.2, "factor": 0.3,
                          "seed": 123, "test_fraction": 0.2}} if name == "circles" else None
        model = model_file(tmp_path, name, data, **train)
        overrides = {"other_init_off_rank_0": True} if "other-init" in case else {}
    done = launch(ranks, sys.executable, WORKER, "train", model, tmp_path,
                  json.dumps(overrides))
    assert done.returncode == 0, done.stderr[-3000:]
    params = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(ranks)]
    runs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(ranks)]
    for r in range(1, ranks):  # every rank holds the very same params and records
        for name, value in params[0].items():
            assert np.array_equal(params[r][name], value), f"rank {r}: {name}"
        assert runs[r]["records"] == [{**a, "seconds": b["seconds"]} for a, b in
                                      zip(runs[0]["records"], runs[r]["records"])]
    assert [run["reports"] for run in runs] == [True] + [False] * (ranks - 1)
    assert [run["quiet"] for run in runs] == [False] + [True] * (ranks - 1)
    overrides.pop("other_init_off_rank_0", None)
    want, records = single_process(model, **overrides)
    error = relative_error(params[0], want)
    print(f"{case}: max relative difference from one process {error:.2e}")
    assert error <= RTOL
    got = runs[0]["records"]
    assert len(got) == len(records)  # stop_at stops every rank where one process stops
    for key, value in records[-1].items():
        if key not in ("seconds", "lr"):
            assert got[-1][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_save_then_load_resumes_under_mpi(tmp_path):
    mpiexec()
    model = model_file(tmp_path, "circles", epochs=6, batch_size=100,
                       optimizer={"type": "momentum", "lr": 0.1, "momentum": 0.9})
    cli = [sys.executable, "-m", "minigraph", "run", model, "--distributed", "--quiet"]
    half = launch(2, *cli, "--epochs", 3, "--save", tmp_path / "half.npz")
    assert half.returncode == 0, half.stderr[-3000:]
    assert half.stdout.count("trained 3 epochs") == 1  # rank 0 alone reports
    rest = launch(2, *cli, "--load", tmp_path / "half.npz", "--save", tmp_path / "resumed.npz")
    assert rest.returncode == 0, rest.stderr[-3000:]
    whole = launch(2, *cli, "--save", tmp_path / "whole.npz")
    assert whole.returncode == 0, whole.stderr[-3000:]
    resumed = load_checkpoint(tmp_path / "resumed.npz")
    uninterrupted = load_checkpoint(tmp_path / "whole.npz")
    assert resumed.epoch == uninterrupted.epoch == 6
    for name, value in uninterrupted.params.items():  # the same steps: bit for bit
        assert np.array_equal(resumed.params[name], value), name
    for name, value in uninterrupted.optimizer.items():
        assert np.array_equal(resumed.optimizer[name], value), name
    want, _ = single_process(model)
    assert relative_error(resumed.params, want) <= RTOL


@pytest.mark.parametrize("mode, ranks, message", [
    ("fail-raise", 2, "deliberate failure on rank 1"),
    ("fail-nan", 3, "the loss became nan"),
    ("diverge", 3, "after epoch 1 the ranks' params differ (CRC-32 rank 0: "),
])
def test_a_failing_rank_ends_the_job_with_exit_1(mode, ranks, message, tmp_path):
    mpiexec()
    model = model_file(tmp_path, "circles", epochs=50, batch_size=50)
    done = launch(ranks, sys.executable, WORKER, mode, model, "--quiet", timeout=120)
    assert done.returncode == 1, done.stderr[-3000:]
    assert message in done.stderr


def test_python_m_mpi4py_m_minigraph_with_the_train_key(tmp_path):
    mpiexec()
    model = model_file(tmp_path, "xor", distributed=True)  # no --distributed flag
    done = launch(2, sys.executable, "-m", "mpi4py", "-m", "minigraph", "run", model,
                  "--epochs", 20)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("model xor: trained 20 epochs") == 1


# ==== without mpiexec ===========================================================================

def test_distributed_without_the_extra_exits_2_naming_it(monkeypatch):
    from minigraph.cli import main

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # `import mpi4py` now fails
    result = CliRunner().invoke(main, ["run", str(ROOT / "models/xor.yaml"), "--distributed"])
    assert result.exit_code == 2
    assert "pip install 'minigraph[mpi]'" in result.output


def test_train_key_distributed_is_checked(tmp_path):
    from minigraph.cli import main

    model = model_file(tmp_path, "xor", distributed="yes")
    result = CliRunner().invoke(main, ["run", str(model)])
    assert result.exit_code == 2 and "train.distributed" in result.output


def test_a_plain_run_never_imports_mpi4py():
    code = ("import sys; from minigraph.cli import main\n"
            "try:\n main(['run', 'models/xor.yaml', '--epochs', '3', '--quiet'])\n"
            "except SystemExit as e:\n assert e.code == 0, e.code\n"
            "assert not [m for m in sys.modules if m.startswith('mpi4py')], 'mpi4py loaded'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr


class _FakeDeviceArray:
    """Stands in for a CuPy array (CuPy is absent here): a device buffer reached only by
    copying it to the host (``get``) and back (``set``)."""

    __module__ = "cupy._fake"

    def __init__(self, values):
        self.values = np.array(values, dtype=np.float32)
        self.copies = 0

    def get(self):
        self.copies += 1
        return self.values.copy()

    def set(self, host):
        self.copies += 1
        self.values[...] = host


class _TwoRanks:
    """An MPI communicator of rank 0 in a job of two whose other rank sends ``other``."""

    def __init__(self, other):
        self.other, self.seen = np.asarray(other, np.float32), []

    def Get_rank(self):  # noqa: N802 - MPI's names
        return 0

    def Get_size(self):  # noqa: N802
        return 2

    def Allreduce(self, sendbuf, recvbuf, op):  # noqa: N802
        self.seen.append(recvbuf)
        recvbuf += self.other


class _MPI:
    IN_PLACE, SUM = object(), object()


def _job(other):
    from minigraph.distributed.job import Job

    return Job(_TwoRanks(other), _MPI)


def test_host_staged_sum_copies_a_device_buffer_out_and_back():
    job = _job([10, 20, 30])
    device = _FakeDeviceArray([1, 2, 3])
    job.sum_in_place(device)
    assert device.values.tolist() == [11, 22, 33] and device.copies == 2
    host = np.array([1, 2, 3], np.float32)  # NumPy: the same path, and the buffer itself
    job.sum_in_place(host)
    assert job.comm.seen[-1] is host and host.tolist() == [11, 22, 33]


def test_gradient_sum_weights_one_flat_buffer_laid_out_like_the_params():
    from minigraph.distributed import GradientSum
    from minigraph.kernels import pack_params

    params = pack_params({"W": np.zeros((2, 2), np.float32), "b": np.zeros(2, np.float32),
                          "unused": np.zeros(1, np.float32)})
    stepped = {}

    class Update:
        def step(self, params, grads):
            stepped.update({k: v.copy() for k, v in grads.items()})

    job = _job(np.arange(7, dtype=np.float32))
    update = GradientSum(Update(), params, ["W", "b"], job)
    update.weight = 0.25
    update.step(params, {"W": np.full((2, 2), 4, np.float32), "b": np.array([8, 12], np.float32)})
    assert len(job.comm.seen) == 1 and job.comm.seen[0] is update.buffer
    assert stepped["W"].tolist() == [[1, 2], [3, 4]] and stepped["b"].tolist() == [6, 8]
    assert "unused" not in stepped
    update.step(params, {})  # a rank with nothing to compute adds zeros
    assert stepped["W"].tolist() == [[0, 1], [2, 3]] and stepped["b"].tolist() == [4, 5]


def test_distributed_needs_a_train_section():
    from minigraph.cli import main

    result = CliRunner().invoke(main, ["run", str(ROOT / "models/backprop_basics.yaml"),
                                       "--distributed"])
    assert result.exit_code == 2
    assert "--distributed cannot apply: it runs one forward pass" in result.output


PENALIZED_SUM = """
minigraph: 1
name: penalized_sum
inputs: {x: {shape: [batch, 1]}, t: {shape: [batch, 1]}}
params: {w: {shape: [1, 1], init: {value: [[0.5]]}}}
nodes:
  - {name: fc, op: matmul, inputs: [x, w], outputs: [y]}
  - {name: diff, op: sub, inputs: [y, t], outputs: [d]}
  - {name: sq, op: square, inputs: [d], outputs: [d2]}
  - {name: se, op: sum, inputs: [d2], outputs: [s]}
  - {name: wsq, op: square, inputs: [w], outputs: [w2]}
  - {name: pen, op: sum, inputs: [w2], outputs: [p]}
  - {name: total, op: add, inputs: [s, p], outputs: [L]}
outputs: [y]
loss: L
data: {train: {inline: {x: [[1], [2], [3], [4]], t: [[2], [4], [6], [8]]}}}
train: {epochs: 1}
"""


@pytest.mark.parametrize("source, expected", [
    (ROOT / "models/linear_regression.yaml", "mean"),
    (ROOT / "models/or_perceptron.yaml", "sum"),
    (PENALIZED_SUM, None),
])
def test_how_the_loss_follows_the_batch_is_measured(source, expected, tmp_path):
    from minigraph.api import load_graph, load_splits
    from minigraph.distributed import DistributedError, batch_reduction
    from minigraph.train import Trainer, train_config

    if isinstance(source, str):
        (tmp_path / "m.yaml").write_text(source)
        source = tmp_path / "m.yaml"
    graph = load_graph(str(source))
    trainer = Trainer(graph, train_config(graph), load_splits(graph))
    if expected is not None:
        assert batch_reduction(trainer) == expected
    else:  # a sum plus a penalty on the params cannot be split among ranks
        with pytest.raises(DistributedError, match="neither the mean .* nor the sum"):
            batch_reduction(trainer)
