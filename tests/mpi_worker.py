"""One rank of the data-parallel tests (tests/test_distributed.py), started by ``mpiexec``.

    mpiexec -n N python tests/mpi_worker.py train MODEL OUT [OVERRIDES_JSON]
        trains MODEL with ``run_model(..., distributed=True)`` and writes this rank's params
        (OUT/rankR.npz) and history (OUT/rankR.json); ``other_init_off_rank_0`` in the
        overrides gives the other ranks other initial params (the broadcast must undo it)
    mpiexec -n N python tests/mpi_worker.py fail-raise|fail-nan|diverge MODEL [CLI ARGS...]
        ``minigraph run MODEL --distributed ...`` where the last rank fails in its third
        step (an uncaught exception, or a NaN loss: a RunError, exit 1), or changes a param
        of its own after the first epoch (the ranks diverge)
"""
import json
import sys

import numpy as np


def train(model, out, overrides):
    import os

    import minigraph.train
    from minigraph.api import run_model
    from minigraph.backend import to_numpy

    if overrides.pop("other_init_off_rank_0", False) and os.environ.get("PMI_RANK") != "0":
        plain_init = minigraph.train.init_params  # rank 0's params must win (broadcast)
        minigraph.train.init_params = lambda graph, seed, backend: plain_init(
            graph, seed + 1, backend)
    result = run_model(model, distributed=True, **overrides)
    trainer = result.trainer
    rank = trainer.job.rank
    np.savez(f"{out}/rank{rank}.npz", **{k: to_numpy(v) for k, v in trainer.params.items()})
    with open(f"{out}/rank{rank}.json", "w", encoding="utf-8") as f:
        json.dump({"records": result.history.records, "size": trainer.job.size,
                   "reports": trainer.reports, "quiet": result.quiet,
                   "stopped_early": result.history.stopped_early}, f)


def fail(mode, model, args):
    from minigraph.cli import main
    from minigraph.distributed import DataParallelTrainer
    from minigraph.train import Trainer

    plain_step, plain_epoch = DataParallelTrainer.train_step, Trainer.train_epoch
    steps = []

    def failing_step(self, batch, rng=None):
        steps.append(1)
        if self.job.rank == self.job.size - 1 and len(steps) == 3:
            if mode == "fail-raise":
                raise RuntimeError(f"deliberate failure on rank {self.job.rank}")
            batch = {k: (v * np.nan if v.dtype.kind == "f" else v) for k, v in batch.items()}
        return plain_step(self, batch, rng)

    def diverging_epoch(self):
        record = plain_epoch(self)
        if self.job.rank == self.job.size - 1:
            next(iter(self.params.values()))[...] += 1e-3
        return record

    if mode == "diverge":
        Trainer.train_epoch = diverging_epoch
    else:
        DataParallelTrainer.train_step = failing_step
    main(["run", model, "--distributed", *args], prog_name="minigraph")


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]) if len(sys.argv) > 4 else {})
    else:
        fail(sys.argv[1], sys.argv[2], sys.argv[3:])
