"""The data-parallel trainer: one :class:`~minigraph.train.Trainer` per rank, all training the
same model on shares of each global batch.

``batch_size`` stays the global batch.  Every rank draws the same shuffled order (the same
seed), cuts the same global batches, and takes its contiguous share of each
(:meth:`Job.bounds`).  It computes the gradients of its share, scales them by its weight and
writes them into one flat buffer laid out like the packed params
(:mod:`minigraph.kernels.packed`); one in-place ``Allreduce`` sums the buffers, and every rank
applies the same optimizer step to the same sum:

* a loss that is the **mean** over the batch: rank ``i`` with ``n_i`` of the ``B`` examples
  has the gradient of ``(1/n_i) sum_i l_j``; with the weight ``n_i / B`` the sum over the ranks
  is ``(1/B) sum_all l_j``, the global batch's gradient;
* a loss that is the **sum** over the batch: the weight is 1.

Which of the two a model's loss is, is measured once (:func:`batch_reduction`); a loss that is
neither cannot be split and is refused.  A rank whose share is empty (a global batch smaller
than the job) adds zeros.  The loss of each step and, with metrics, the predictions of the
global batch are gathered, so an epoch's record is the single process's; evaluation splits the
test set the same way.  Rank 0's state (fresh or loaded) is broadcast once at the start, and a
checksum of the params after every epoch catches ranks that drifted apart.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module, select, to_numpy
from ..checkpoint import Checkpoint
from ..data import iterate_batches, num_examples
from ..engine.run import Pass
from ..kernels.packed import PackedParams
from ..shapes import batch_sizes
from ..train import Trainer, scalar
from .job import DistributedError, Job, RanksDiverged


def rows(arrays: dict, start: int, stop: int) -> dict:
    """Examples ``start:stop`` of every array (scalars whole)."""
    return {k: (a if np.ndim(a) == 0 else a[start:stop]) for k, a in arrays.items()}


class DataParallelTrainer(Trainer):
    """A :class:`~minigraph.train.Trainer` that is one rank of a data-parallel job.

    Only rank 0 ``reports`` (its caller prints, logs and saves).  Everything else -- the
    records, ``stop_at``, the params after every step -- is the same on every rank.
    """

    def __init__(self, graph, config, data, *, job: Job, backend=None, checkpoint=None,
                 use_kernels=None):
        self.job = job
        backend = select(backend or config.backend).name
        if backend == "cupy":
            job.use_local_gpu()  # before the first array is made on a device
        super().__init__(graph, config, data, backend=backend, checkpoint=checkpoint,
                         use_kernels=use_kernels)
        if not graph.inputs:
            raise DistributedError(f"model '{graph.name}' has no inputs: there are no "
                                   "examples to share among the ranks of --distributed")
        self.reports = job.rank == 0
        self._broadcast_state()
        self.mean = batch_reduction(self) == "mean"
        self.update = GradientSum(self.update, self.params, self._names_with_grads(), job)
        self._gather = bool(config.metrics and self.prediction)
        self._check_shares()

    def _broadcast_state(self) -> None:
        """Every rank starts from rank 0's params, optimizer state, epoch and RNG state."""
        state = self.checkpoint() if self.job.rank == 0 else None
        if state is not None:
            state = Checkpoint({k: to_numpy(v) for k, v in state.params.items()},
                               {k: to_numpy(v) for k, v in state.optimizer.items()},
                               state.epoch, state.rng_state, state.model)
        state = self.job.broadcast(state)
        if self.job.rank != 0:
            self.restore(state)

    def _names_with_grads(self) -> list:
        """The params that get a gradient (one pass on one example): the ones every rank
        sends, even a rank with nothing to compute."""
        one = rows(self.train_data, 0, 1)
        rng = self.backend.xp.random.default_rng(0)
        run = self.executor.forward(self.params, one, training=True, rng=rng, checked=True,
                                    keep_values=False)
        grads = self.executor.backward(run, keep_all=False)
        return [name for name in self.params if grads.get(name) is not None]

    def _check_shares(self) -> None:
        """Infer the shapes of every share size training and evaluation will cut."""
        cfg, n = self.config, num_examples(self.train_data)
        share = {stop - start for start, stop in map(
            self.job.bounds, batch_sizes(n, cfg.batch_size, cfg.drop_last))} - {0}
        self.executor.check_batches(self.train_data, sorted(share))
        if self.test_data:
            start, stop = self.job.bounds(num_examples(self.test_data))
            if stop > start:
                self.executor.check_batches(self.test_data, batch_sizes(
                    stop - start, cfg.batch_size or 1000))

    def train_step(self, batch: dict, rng=None):
        """One update on a global batch: this rank's share of it, the weighted gradients
        summed over the ranks, the same optimizer step everywhere.  Returns the global
        batch's loss and a pass holding its predictions (gathered when metrics need them)."""
        n = num_examples(batch)
        start, stop = self.job.bounds(n)
        self.update.weight = (stop - start) / n if self.mean else 1.0
        preds = None
        if stop > start:
            loss, run = super().train_step(rows(batch, start, stop), rng)
            if self._gather:
                preds = to_numpy(run.values[self.prediction])
        else:  # a global batch smaller than the job: this rank adds zeros
            self.update.step(self.params, {})
            loss = 0.0
        parts = self.job.allgather((self.update.weight * loss, preds))
        loss = math.fsum(part[0] for part in parts)
        if not self._gather:
            return loss, Pass({})
        return loss, Pass({self.prediction: np.concatenate([p for _, p in parts
                                                            if p is not None])})

    def train_epoch(self) -> dict:
        """One epoch (see :meth:`Trainer.train_epoch`), then the check that every rank holds
        the same params."""
        record = super().train_epoch()
        sums = self.job.allgather(self.job.checksum(self.params.values()))
        if len(set(sums)) > 1:
            detail = ", ".join(f"rank {r}: {s:08x}" for r, s in enumerate(sums))
            raise RanksDiverged(f"after epoch {self.epoch} the ranks' params differ "
                                f"(CRC-32 {detail}): the ranks no longer train the same "
                                "model, so the run stops")
        return record

    def evaluate(self, arrays: dict, batch_size: int | None = None) -> dict:
        """Loss and metrics on ``arrays``: each rank evaluates its contiguous share, the
        losses are added and the metrics computed on everyone's predictions."""
        batch_size = batch_size or self.config.batch_size or 1000
        start, stop = self.job.bounds(num_examples(arrays))
        part, total, preds = rows(arrays, start, stop), 0.0, []
        for batch in iterate_batches(part, batch_size, shuffle=False, rng=self.rng) \
                if stop > start else ():
            run = self.executor.forward(self.params, batch, checked=True, keep_values=False)
            total += scalar(run.values[self.graph.loss]) * num_examples(batch)
            if self.prediction:
                preds.append(to_numpy(run.values[self.prediction]))
        parts = self.job.allgather((total, preds))
        result = {"loss": math.fsum(t for t, _ in parts) / max(num_examples(arrays), 1)}
        preds = [p for _, ps in parts for p in ps]
        host = {t: to_numpy(arrays[t]) for t in self.targets}
        result.update(self._metrics(np.concatenate(preds) if preds else None, host))
        return result


def batch_reduction(trainer: Trainer) -> str:
    """``"mean"`` or ``"sum"``: how the model's loss of several examples follows from their
    losses one by one (measured on the first few training examples, in eval mode).

    The loss of ``k`` examples together is compared with the mean and with the sum of their
    ``k`` losses alone.  A loss that is neither (a sum with a penalty on the params, say)
    cannot be split among ranks and is refused.
    """
    data = trainer.train_data
    k = min(num_examples(data), 8)
    if k < 2:
        return "mean"
    trainer.executor.check_batches(data, [1, k])

    def loss_of(start, stop):
        run = trainer.executor.forward(trainer.params, rows(data, start, stop), checked=True,
                                       keep_values=False)
        return scalar(run.values[trainer.graph.loss])

    together, alone = loss_of(0, k), [loss_of(i, i + 1) for i in range(k)]
    tolerance = 1e-4 * max(abs(together), math.fsum(map(abs, alone)), 1e-30)
    for name, expected in (("mean", math.fsum(alone) / k), ("sum", math.fsum(alone))):
        if abs(together - expected) <= tolerance:
            return name
    raise DistributedError(
        f"model '{trainer.graph.name}': the loss of {k} examples together ({together:.6g}) is "
        f"neither the mean ({math.fsum(alone) / k:.6g}) nor the sum ({math.fsum(alone):.6g}) "
        "of their losses one by one, so --distributed cannot split a batch among ranks")


class GradientSum:
    """An update (``step(params, grads)``) that first sums the ranks' gradients.

    Each gradient, times ``weight``, is written into one flat buffer laid out like the packed
    params; one in-place ``Allreduce`` (:meth:`Job.sum_in_place`) sums the buffers of all
    ranks; the wrapped update then steps with views of that buffer.  ``step(params, {})``
    adds zeros (a rank with nothing to compute).
    """

    def __init__(self, update, params: dict, names: list, job: Job):
        self.update, self.job, self.weight = update, job, 1.0
        layout = params if isinstance(params, PackedParams) else PackedParams(params)
        first = next(iter(params.values()), np.empty(0, np.float32))  # (a model may have none)
        self.xp = get_array_module(first)
        self.buffer = self.xp.empty(sum(int(a.size) for a in params.values()), first.dtype)
        self.views = [(name, view) for name, view in layout.views_of(self.buffer)
                      if name in names]

    def step(self, params: dict, grads: dict) -> None:
        for name, view in self.views:
            grad = grads.get(name)
            if grad is None:
                view[...] = 0
            elif self.weight == 1.0:
                view[...] = grad
            else:
                self.xp.multiply(grad, self.weight, out=view)
        self.job.sum_in_place(self.buffer)
        self.update.step(params, dict(self.views))

