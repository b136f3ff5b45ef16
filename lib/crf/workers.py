"""How many worker processes run the dense CRFs: config key ``crf_workers``.

``crf_workers`` is ``auto`` (the default) or a count (0: in this process). A CRF gives the same
bytes wherever it runs (lib.crf.batch, lib.workers), so the choice changes the speed only.
``auto`` takes this process's share of the cores (the job's processes share them), except where
the CRFs handed over at once are so small that handing them over costs more than running them
here (stage 3's training batch at the small crops of tests and demos). Each stage logs its
choice once.
"""
from dataclasses import dataclass

from lib.config import AUTO
from lib.training.runtime import available_cores, usable_workers

# The CRF work handed over at once, in pixels x labels x mean-field iterations, below which
# ``auto`` runs the CRFs in this process. Measured with BatchCRF on the bench's training batches
# (tools/bench.py --stages seg_crf at several sizes; best of many alternating calls) on the
# 2-core reference CPU: the CRF costs 16-18 ns per unit in this process (15 x 9 x 9 x 21 x 10 =
# 0.26 M units: 4.4 ms; the published 15 x 41 x 41, 5.3 M: 83-134 ms); handing a batch to 2
# workers and back costs 0.25-0.45 ms at best, far more with a cold worker or busy cores (the
# quick bench's training step, 2 images of 9 x 9: 140 ms in 2 workers against 3 ms serially).
# Below 1 M units (16 ms here) 2 workers save a few ms per batch at best (15 x 9 x 9: 1.5x at
# best, 0.6-0.7x on average while other jobs ran), which a pool's start (0.4 s and 39 MB a
# worker) and a demo's two trainings side by side do not repay; at the published size they won
# 1.78x on idle cores (0.95-1.1x while other jobs ran).
MIN_PARALLEL_WORK = 1_000_000


@dataclass(frozen=True)
class CRFBatch:
    """The CRFs handed to the workers at once: ``images`` images of ``side`` x ``side`` with
    ``labels`` labels and ``iterations`` mean-field iterations."""

    images: int
    side: int
    labels: int
    iterations: int

    @property
    def work(self):
        return self.images * self.side * self.side * self.labels * self.iterations

    def __str__(self):
        return f"batches of {self.images} images of {self.side} x {self.side}"


def _count(number, noun, plural=None):
    """``1 core``, ``2 cores``."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def choose_crf_workers(requested, cores, batch=None, pipelined=False):
    """(worker processes, why) for ``crf_workers`` = ``requested`` (``auto`` or a count) with
    ``cores`` cores for this process. ``batch``: the CRFBatch handed over at once, None for
    full-size images (always large enough). ``auto`` takes no more workers than a batch has
    images. ``pipelined``: this process goes on working while the workers run its CRFs (a
    lib.workers.WorkerQueue behind the network), so one worker gains; otherwise (a batch waits
    for its CRFs) one worker would only add the hand-off."""
    if requested == AUTO:
        if batch is not None and batch.work < MIN_PARALLEL_WORK:
            return 0, f"crf_workers auto: {batch} are too small to gain"
        workers = cores if batch is None else min(cores, batch.images)
        why = f"crf_workers auto: {_count(cores, 'core')} for this process" + (
            f", {_count(batch.images, 'image')} per batch" if workers < cores else "")
    else:
        workers = min(requested, cores)
        why = f"crf_workers {requested}" + (
            f", {_count(cores, 'core')} for this process" if workers < requested else "")
    if workers == 1 and not pipelined:
        return 0, why + "; one worker process would only add the hand-off"
    return workers, why


def crf_choice(cfg, ctx, batch=None, pipelined=False):
    """(worker processes, log line) of this process's CRFs for ``cfg.crf_workers``
    (:func:`choose_crf_workers`; 0 workers: in this process)."""
    cores = usable_workers(available_cores(), ctx)
    workers, why = choose_crf_workers(cfg.crf_workers, cores, batch, pipelined)
    where = _count(workers, "worker process", "worker processes") if workers else "this process"
    return workers, f"CRF in {where} ({why})"


def crf_workers(cfg, ctx, logger, batch=None, pipelined=False):
    """The worker processes of :func:`crf_choice`, the choice logged (main process only)."""
    workers, line = crf_choice(cfg, ctx, batch, pipelined)
    logger.info("%s", line)
    return workers
