"""The inference skeleton every stage shares: make_seeds and infer_cam (lib.seeds.inference)
and infer_seg (lib.stage3.infer_seg).

On every process of the job (lib.training.distributed.launch) the stage checks its inputs and
builds its network (an :class:`InferencePlan`) before anything is written. The skeleton then
checks the output folder's record (lib.records, beside the folder), takes this process's share
of the names whose outputs are not there yet (each process every world_size-th name), runs the
network batch after batch on the device while worker processes write each image's outputs
(lib.workers), and ends the log (``<folder>.log``, beside the folder) with a summary line, also
when the run stops on an error, Ctrl-C or SIGTERM (lib.training.interrupt). A rerun makes only
what is missing. What differs between the stages is an :class:`InferenceStage`.
"""
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.data import DataLoader

from lib.crf.workers import crf_workers
from lib.paths import beside
from lib.progress import progress_bar
from lib.records import names_to_write, outputs_summary, prepare_output_folder, weights_identity
from lib.training.distributed import barrier, launch, shard, sum_over_processes
from lib.training.interrupt import interrupting_stop_signals
from lib.training.run_folder import TrainedNetwork
from lib.training.runtime import amp_dtype, autocast, loader_workers, process_logger
from lib.workers import WorkerQueue

LOG_SUFFIX = ".log"  # <folder>.log, beside the output folder as its record is


@dataclass
class InferencePlan:
    """What one stage's inference reads and makes, built before anything is written."""

    trained: TrainedNetwork  # the network, its weights, the config with its run's keys
    dataset: object  # the items of ``dataset.names`` (the skeleton narrows the names)
    folder: str  # the output folder (its record and log lie beside it)
    record: dict  # the settings that change the outputs (the weights' identity is added)
    retry_hint: str  # how to write elsewhere, for a folder made with other settings
    describe: Callable  # describe(count): what the run makes of count images (first line)
    write: Callable  # write(job, *arrays): one image's outputs; picklable, run by workers
    done: Callable  # done(name): the image's outputs are all there and complete
    remove: Callable  # remove(): delete every output of the folders (overwrite=true)
    folders: list  # every folder the run writes (the summary line)
    crf: bool = False  # write runs a CRF: worth crf_workers worker processes
    collate: Callable = None  # the loader's collate function (default: torch's)


@dataclass(frozen=True)
class NetworkDevice:
    """Where and how the network runs: the process's device, the autocast dtype of ``amp``
    (None: float32) and the memory format of ``channels_last``."""

    device: torch.device
    dtype: torch.dtype
    memory_format: torch.memory_format

    def autocast(self):
        return autocast(self.dtype, self.device)


class InferenceStage:
    """One stage's part of inference: its inputs, network and outputs, and what the network
    makes of a batch. Picklable (every process of the job gets a copy)."""

    name = "infer"  # the logger's and the progress bar's name

    def plan(self, cfg):
        """Check the inputs and build the network; the :class:`InferencePlan`."""
        raise NotImplementedError

    def jobs(self, plan, batch, on):
        """(job, arrays) of each image of one loader batch for ``plan.write(job, *arrays)``
        (``arrays``: large NumPy arrays, handed over in shared memory): the network (already
        on ``on.device``, in eval mode, under ``on.autocast()``) on the batch."""
        raise NotImplementedError


def run_inference(cfg, stage):
    """Write the outputs of ``stage`` for every name, on every process of the job."""
    launch(_Worker(stage), cfg)


class _Worker:
    """A picklable ``worker(ctx, cfg)`` for :func:`lib.training.distributed.launch`."""

    def __init__(self, stage):
        self.stage = stage

    def __call__(self, ctx, cfg):
        _infer(ctx, cfg, self.stage)


def _infer(ctx, cfg, stage):
    plan = stage.plan(cfg)
    trained, dataset = plan.trained, plan.dataset
    cfg = trained.cfg
    record = {**plan.record, "weights": weights_identity(trained.weights)}
    moved = prepare_output_folder(ctx, plan.folder, record, cfg.overwrite, plan.retry_hint,
                                  plan.remove, plan.folders)
    logger = process_logger(f"sgan.{stage.name}", beside(plan.folder, LOG_SUFFIX), ctx.is_main)
    if moved:
        logger.info("%s", moved)
    if trained.adopted:
        logger.info("the network as its run trained it: %s", ", ".join(trained.adopted))
    total, mine = len(dataset.names), len(shard(dataset.names, ctx))
    dataset.names = names_to_write(dataset.names, ctx, plan.done, cfg.overwrite)
    todo = sum_over_processes(len(dataset.names), ctx)
    on = NetworkDevice(ctx.device, amp_dtype(cfg.amp, ctx.device),
                       torch.channels_last if cfg.channels_last else torch.preserve_format)
    workers = crf_workers(cfg, ctx, logger, pipelined=True) if plan.crf and dataset.names else 0
    logger.info("%s on %d x %s from %s into %s; %d already there%s",
                plan.describe(todo), ctx.world_size, ctx.device, trained.weights, plan.folder,
                total - todo, "" if cfg.overwrite else " (overwrite=true to redo them)")
    loader = DataLoader(dataset, batch_size=cfg.test_batch_size, collate_fn=plan.collate,
                        num_workers=loader_workers(cfg, ctx, logger),
                        pin_memory=ctx.device.type == "cuda")
    started = time.monotonic()
    with interrupting_stop_signals():
        try:
            with WorkerQueue(plan.write, workers) as writer, torch.no_grad():
                trained.model.to(ctx.device, memory_format=on.memory_format).eval()
                for batch in progress_bar(loader, shown=ctx.is_main, desc=stage.name):
                    for job, arrays in stage.jobs(plan, batch, on):
                        writer.submit(job, arrays)
        except (Exception, KeyboardInterrupt) as exc:  # this process's counts: the others
            written = sum(map(plan.done, dataset.names))  # may be gone, no collective sums them
            who = f"process {ctx.rank} of {ctx.world_size}: " if ctx.distributed else ""
            logger.info("%s%s", who, outputs_summary(
                written, mine - len(dataset.names), len(dataset.names) - written,
                time.monotonic() - started, plan.folders, exc))
            raise
        barrier(ctx)
    logger.info("%s", outputs_summary(todo, total - todo, 0, time.monotonic() - started,
                                      plan.folders))
