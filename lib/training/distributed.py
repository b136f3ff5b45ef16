"""Distributed set-up in one place: torchrun, self-spawned processes, or a single process.

Under ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK in the environment) every process joins
the group torchrun made. Started plainly, a job spawns ``num_processes`` processes itself
(0 = one per visible GPU, so the paper's ``CUDA_VISIBLE_DEVICES=0,1 python ...`` uses both);
with one process nothing distributed is set up at all. Backend nccl on CUDA, gloo on CPU.
The parent of self-spawned processes passes SIGTERM on to them and waits while they stop
(lib/training/interrupt.py), and reports how they ended in one line: the user errors of the
processes that had one (each message once), or an interruption.
Every collective of the repository goes through the helpers here, which put its tensors on
the process's device (NCCL takes no CPU tensor).
"""
import os
import socket
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lib.errors import Interrupted, UserError
from lib.training.interrupt import forwarding_stop_signals
from lib.training.runtime import available_cores, check_device, resolve_device
from lib.workers import STOP_SIGNALS

STOPPING_SECONDS = 10  # when one self-spawned process ends with an error, the others get this
#                        long to end as well before they are terminated


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: its rank, the number of processes and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def shard(items, ctx):
    """This process's share of ``items`` (every world_size-th, from its rank)."""
    return list(items)[ctx.rank::ctx.world_size]


def _all_reduce(value, ctx, op):
    """``value`` (a number or a tensor) reduced over the job's processes by ``op`` (the name of
    a ``dist.ReduceOp``), as a tensor on this process's device: NCCL, the backend of every
    multi-GPU job, reduces only tensors there. A tensor given is left as it was."""
    reduced = torch.as_tensor(value, device=ctx.device)
    if ctx.distributed:
        reduced = reduced.clone()
        dist.all_reduce(reduced, op=getattr(dist.ReduceOp, op))
    return reduced


def all_reduce_sum(value, ctx):
    """The sum over the job's processes of ``value`` (a number or a tensor), as a tensor on
    this process's device (:func:`_all_reduce`)."""
    return _all_reduce(value, ctx, "SUM")


def sum_over_processes(count, ctx):
    """The sum of the integer ``count`` over the job's processes (e.g. the images left to
    write)."""
    return int(all_reduce_sum(count, ctx).item())


def max_over_processes(number, ctx):
    """The largest of the integer ``number`` of the job's processes (e.g. the stop signal any
    of them got: lib.training.interrupt). On one process ``number`` itself, without a trip to
    the device: the training loop asks after every iteration."""
    if not ctx.distributed:
        return int(number)
    return int(_all_reduce(number, ctx, "MAX").item())


def gather_objects(obj, ctx):
    """The picklable ``obj`` of every process, by rank ([obj] on one process)."""
    if not ctx.distributed:
        return [obj]
    gathered = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(ctx):
    if ctx.distributed:
        dist.barrier()


def _process_device(device_name, local_rank):
    device = resolve_device(device_name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def _join_group(rank, world_size, local_rank, device_name):
    device = _process_device(device_name, local_rank)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank,
                            world_size=world_size)
    return DistContext(rank, world_size, device)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_then_leave_together(worker, ctx, cfg):
    """``worker(ctx, cfg)``, then a barrier: a process that finished waits for the others
    before the group is destroyed, so rank 0, whose store the group uses, is not gone while
    another process still talks to it (under load that aborted the other process)."""
    result = worker(ctx, cfg)
    dist.barrier()
    return result


def _share_the_cores(ctx):
    """On the CPU, torch's threads of this process: its share of the cores it may run on (its
    CPU affinity, as everywhere else), instead of every process oversubscribing them."""
    if ctx.device.type == "cpu":
        torch.set_num_threads(max(1, available_cores() // ctx.world_size))


def _spawned(local_rank, world_size, port, worker, cfg, errors):
    """Entry point of a self-spawned process: join the group, run; a UserError's line goes to
    the parent (``errors``, a queue of (rank, message)), which reports it."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    ctx = _join_group(local_rank, world_size, local_rank, cfg.device)
    _share_the_cores(ctx)
    try:
        _run_then_leave_together(worker, ctx, cfg)
    except UserError as exc:
        errors.put((ctx.rank, str(exc)))
        sys.exit(2)
    except KeyboardInterrupt as exc:  # the loop logged where and how to resume
        sys.exit(getattr(exc, "status", 130))
    finally:
        dist.destroy_process_group()


def _stop_signal(exit_code):
    """The stop signal (Ctrl-C, SIGTERM) that ended a process with ``exit_code``: 128 + its
    number where the process stopped on it (the training loop, inference), minus its number
    where it killed the process (one that had not set its handlers yet); else None."""
    for signum in STOP_SIGNALS:
        if exit_code in (128 + signum, -signum):
            return signum
    return None


def _errors_line(messages, processes):
    """The user errors of the job's processes (``messages``: rank -> message) in one line, each
    distinct message once: as process 0 says it where process 0 had it (a bad input fails
    every process with one message, which reads as on one process), else after the first
    process that had it (``process 1 of 2: ...``)."""
    first = {}
    for rank in sorted(messages):
        first.setdefault(messages[rank], rank)
    return "; ".join(message if rank == 0 else f"process {rank} of {processes}: {message}"
                     for message, rank in first.items())


def _job_ending(failure, processes, errors):
    """What a job of self-spawned processes ends with once one of them failed (``failure``:
    torch's exception; ``errors``: the queue of their user errors): an interruption, a
    UserError (before any process's traceback: once a process has left on one, the others'
    collectives fail), or None for a traceback alone (a bug), which goes on as it is."""
    signum = _stop_signal(getattr(failure, "exit_code", None))
    if signum:
        return Interrupted("interrupted (see the last line of process 0 above)", signum)
    messages = {}
    while not errors.empty():
        rank, message = errors.get()
        messages[rank] = message
    if messages:
        return UserError(_errors_line(messages, processes))
    if isinstance(failure, mp.ProcessExitedException):
        return UserError(f"process {failure.error_index} of {processes} failed "
                         f"(exit code {failure.exit_code}); see its message above")
    return None


def requested_processes(cfg):
    """``num_processes``, or (0 = auto) one per visible GPU when running on CUDA without a
    device index, else 1."""
    if cfg.num_processes:
        return cfg.num_processes
    device = resolve_device(cfg.device)
    if device.type == "cuda" and device.index is None:
        return max(1, torch.cuda.device_count())
    return 1


def launch(worker, cfg):
    """Run ``worker(ctx, cfg)`` in every process of the job; return its result on one process."""
    check_device(cfg.device)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        ctx = _join_group(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                          int(os.environ.get("LOCAL_RANK", 0)), cfg.device)
        try:
            return _run_then_leave_together(worker, ctx, cfg)
        finally:
            dist.destroy_process_group()
    processes = requested_processes(cfg)
    if processes == 1:
        return worker(DistContext(0, 1, _process_device(cfg.device, 0)), cfg)
    errors = mp.get_context("spawn").SimpleQueue()
    context = mp.start_processes(_spawned, args=(processes, _free_port(), worker, cfg, errors),
                                 nprocs=processes, join=False, start_method="spawn")
    try:
        with forwarding_stop_signals(context.processes):
            while not context.join(grace_period=STOPPING_SECONDS):
                pass
    except (mp.ProcessExitedException, mp.ProcessRaisedException) as failure:
        ending = _job_ending(failure, processes, errors)
        if ending is None:
            raise
        raise ending from None
    return None
