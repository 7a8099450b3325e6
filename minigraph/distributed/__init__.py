"""Data-parallel training on MPI: ``mpiexec -n N minigraph run MODEL --distributed``.

``job.py``: joining the MPI job (mpi4py is imported there, and only when asked), the
collectives, ending every rank when one fails, and the GPU path (NCCL, or host-staged);
``trainer.py``: :class:`DataParallelTrainer`, the :class:`~minigraph.train.Trainer` each rank
runs (global-batch semantics, one flat gradient ``Allreduce`` per step).
"""
from .job import DistributedError, Job, RanksDiverged, end_job, join_job
from .trainer import DataParallelTrainer, GradientSum, batch_reduction

__all__ = ["DataParallelTrainer", "DistributedError", "GradientSum", "Job", "RanksDiverged",
           "batch_reduction", "end_job", "join_job"]
