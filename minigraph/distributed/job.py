"""One process's place in an MPI job: joining it, the collectives training uses, and ending
the whole job when one rank fails.

mpi4py is imported only here, and only by :func:`join_job`: a run without ``--distributed``
never loads it.  Every rank runs the same program; ``rank`` 0 is the one that reports.

A rank that fails while the others wait in a collective would leave them waiting for ever, so
a joined process ends the whole job instead: an uncaught exception (``sys.excepthook``) and a
failing exit of the command line (:func:`end_job`) call ``MPI_Abort`` with the exit code
(1 for an exception), which makes ``mpiexec`` stop every rank and exit with that code.
``python -m mpi4py`` does the same for the exceptions it sees.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
import zlib

from ..backend import to_numpy
from ..errors import MinigraphError, RunError

INSTALL = "pip install 'minigraph[mpi]'"
ABORT_GRACE_SECONDS = 0.5  # see _abort()


class DistributedError(MinigraphError):
    """Data-parallel training cannot start (no MPI, or a model it cannot split)."""


class RanksDiverged(RunError):
    """The ranks' params differ: they no longer train the same model (the CLI exits 1)."""


def join_job() -> Job:
    """Join the MPI job this process was started in (``mpiexec -n N ...``; a process started
    alone is a job of one), and make a failure of this rank end every rank."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as exc:
        raise DistributedError(f"--distributed (train.distributed) needs MPI for Python: "
                               f"{INSTALL} (mpi4py and the mpich wheel), then launch with "
                               f"mpiexec -n N minigraph run MODEL --distributed "
                               f"[{type(exc).__name__}: {exc}]") from None
    job = Job(MPI.COMM_WORLD, MPI)
    if not isinstance(sys.excepthook, _AbortHook):
        sys.excepthook = _AbortHook(sys.excepthook, job)
    if job.rank != 0 and threading.current_thread() is threading.main_thread():
        # Ctrl-C reaches every rank; rank 0 alone stops at its epoch boundary, saves, and
        # ends the job (the others wait for it in a collective, and are ended with it).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return job


def end_job(code) -> None:
    """End every rank of the MPI job this process joined when it exits with a failing
    ``code`` (``SystemExit.code``); nothing when it joined none or the exit is a success."""
    mpi = sys.modules.get("mpi4py.MPI")
    if not code or mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return
    if mpi.COMM_WORLD.Get_size() > 1:
        _abort(mpi.COMM_WORLD, code if isinstance(code, int) else 1)


def _abort(comm, code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    # mpiexec forwards each rank's output through a proxy, and MPI_Abort tears the proxies
    # down: give them a moment to pass on this rank's last words (seen cut mid-traceback)
    time.sleep(ABORT_GRACE_SECONDS)
    comm.Abort(code)


class _AbortHook:
    """``sys.excepthook`` of a rank: report the exception as Python does, then abort the job
    (exit status 1) so that no other rank waits for this one."""

    def __init__(self, previous, job: Job):
        self.previous, self.job = previous, job

    def __call__(self, kind, value, traceback):
        self.previous(kind, value, traceback)
        if self.job.size > 1:
            _abort(self.job.comm, 130 if issubclass(kind, KeyboardInterrupt) else 1)


class Job:
    """This process in an MPI job: its ``rank`` among ``size``, its contiguous share of
    anything cut into examples, and the collectives of data-parallel training."""

    def __init__(self, comm, mpi):
        self.comm, self.mpi = comm, mpi
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.allreduce_seconds = 0.0  # time spent summing gradients (see sum_in_place)
        self._nccl = None

    def bounds(self, n: int) -> tuple:
        """``(start, stop)`` of this rank's share of ``n`` examples: contiguous, in rank order,
        sizes differing by at most one (a rank's share is empty when ``n`` < ``size``)."""
        return n * self.rank // self.size, n * (self.rank + 1) // self.size

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank (any picklable object)."""
        return self.comm.bcast(value, root=0)

    def allgather(self, value) -> list:
        """Every rank's ``value``, in rank order, on every rank."""
        return self.comm.allgather(value)

    def sum_in_place(self, buffer) -> None:
        """Sum ``buffer`` over the ranks, in place, on every rank: one ``Allreduce``.

        A NumPy buffer is reduced by MPI directly.  A CuPy buffer goes through NCCL when
        :meth:`use_local_gpu` set it up, else it is staged through the host (copy out, MPI
        ``Allreduce``, copy back) -- for NumPy that copy is the buffer itself.
        """
        start = time.perf_counter()
        if self._nccl is not None and not type(buffer).__module__.startswith("numpy"):
            self._nccl(buffer)
        else:
            host = to_numpy(buffer)  # NumPy: the same array; CuPy: a copy on the host
            self.comm.Allreduce(self.mpi.IN_PLACE, host, op=self.mpi.SUM)
            if host is not buffer:
                buffer.set(host)
        self.allreduce_seconds += time.perf_counter() - start

    def checksum(self, arrays) -> int:
        """A CRC-32 of ``arrays``' bytes, in order (to compare params across ranks)."""
        crc = 0
        for array in arrays:
            crc = zlib.crc32(memoryview(to_numpy(array)).cast("B"), crc)
        return crc

    def use_local_gpu(self) -> None:
        """One rank per GPU: this rank's device is its rank among the ranks on its machine
        (the shared-memory communicator); with a GPU of its own per rank, gradients are summed
        by NCCL, else staged through the host.  (Not run on the CPU machines of this
        repository's tests; see README "Data-parallel training".)"""
        import cupy

        local = self.comm.Split_type(self.mpi.COMM_TYPE_SHARED, key=self.rank)
        local_rank, local_size = local.Get_rank(), local.Get_size()
        local.Free()
        devices = cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.Device(local_rank % devices).use()
        if local_size <= devices and self.size > 1:
            self._nccl = _NcclSum(self)


class _NcclSum:
    """Sum a CuPy buffer over the ranks with NCCL (``cupy.cuda.nccl``), on the current
    stream; rank 0 makes the NCCL id and MPI hands it to the others."""

    def __init__(self, job: Job):
        from cupy.cuda import nccl

        self.nccl = nccl
        uid = job.broadcast(nccl.get_unique_id() if job.rank == 0 else None)
        self.comm = nccl.NcclCommunicator(job.size, uid, job.rank)
        self.types = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32,
                      "float64": nccl.NCCL_FLOAT64}

    def __call__(self, buffer) -> None:
        import cupy

        self.comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size,
                            self.types[str(buffer.dtype)], self.nccl.NCCL_SUM,
                            cupy.cuda.get_current_stream().ptr)
