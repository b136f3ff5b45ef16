"""Worker processes for work that is independent per image (decoding, CRFs, PNG writing).

Pool workers ignore Ctrl-C: the parent gets it alone, stops the pool and reports one line,
instead of every worker printing a traceback. They end on SIGTERM, which is how a pool's
terminate() ends them (a training's batch CRF survives losing them: lib.crf.batch).
"""
import collections
import math
import multiprocessing
import os
import signal
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory

import numpy as np

from lib.errors import UserError

BACKLOG_PER_WORKER = 4  # jobs queued per worker before the submitter waits
WORKER_CHECK_SECONDS = 0.2  # how often a submitter waiting for a job checks its workers live
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and a scheduler's notice


def pool_worker_signals():
    """A pool worker's start: leave Ctrl-C to the parent process, and end on SIGTERM (how a
    pool's terminate() ends it) whatever handler a forking parent had set (one that raises
    would have every worker print a traceback instead)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def ignore_stop_signals(worker_id=None):
    """A DataLoader worker's start (worker_init_fn): leave Ctrl-C and SIGTERM to the training
    process, which stops at the end of its iteration (a worker ended by SIGTERM would fail
    the batch under way); a loader's worker still ends with its parent."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _start_method(fork):
    """``fork`` (the platform's default), else forkserver where there is one, else spawn: a
    forked copy of a process that has initialised CUDA is not safe."""
    if fork:
        return None
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def worker_pool(workers, fork=True):
    """A ``multiprocessing`` pool of ``workers`` processes that ignore Ctrl-C. ``fork`` False
    starts them without forking this process (forkserver, else spawn). The workers share this
    process's resource tracker: one forked before it ran would start its own, which unlinks
    the shared-memory blocks a worker attached (WorkerQueue's arrays) when that worker ends."""
    resource_tracker.ensure_running()
    context = multiprocessing.get_context(_start_method(fork))
    return context.Pool(workers, initializer=pool_worker_signals)


def worker_executor(workers):
    """A ``ProcessPoolExecutor`` of up to ``workers`` processes that ignore Ctrl-C, started
    without forking this process. Unlike a ``multiprocessing`` pool, it survives a worker that
    ends (a scheduler's SIGTERM reaches every process of a job): the work it held fails with
    BrokenProcessPool instead of never coming back."""
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context(_start_method(False))
    return ProcessPoolExecutor(workers, mp_context=context, initializer=pool_worker_signals)


def imap_in_workers(function, tasks, workers):
    """Yield ``function(task)`` for each task: in this process when fewer than two workers
    would be busy, else from a pool, in completion order (a worker that dies: a UserError, as
    in :class:`WorkerQueue`)."""
    tasks = list(tasks)
    workers = min(workers, len(tasks))
    if workers <= 1:
        yield from map(function, tasks)
        return
    with worker_pool(workers) as pool:
        processes = list(pool._pool)  # the pool replaces a dead one unseen: see check_alive
        results = pool.imap_unordered(function, tasks)
        while True:
            try:
                result = results.next(WORKER_CHECK_SECONDS)
            except multiprocessing.TimeoutError:
                check_alive(processes)
                continue
            except StopIteration:
                return
            yield result


def default_workers():
    """Worker processes by default: the cores, at most 8."""
    return min(8, os.cpu_count() or 1)


def chunked(items, workers, max_chunk, chunks_per_worker=8):
    """``items`` cut into consecutive chunks: about ``chunks_per_worker`` per worker (so the
    progress bar moves and the load balances), at most ``max_chunk`` items each."""
    items = list(items)
    size = max(1, min(max_chunk, math.ceil(len(items) / (max(workers, 1) * chunks_per_worker))))
    return [items[i:i + size] for i in range(0, len(items), size)]


@dataclass(frozen=True)
class SharedArray:
    """A NumPy array handed to a worker through a shared-memory block (not pickled through a
    pipe: stage 3's scores of a COCO image are 81 x 480 x 640 float32, 100 MB)."""

    block: str  # the block's name
    shape: tuple
    dtype: str


def _with_arrays(function, job, shared):
    """A worker's job with arrays: ``function(job, *arrays)``, the arrays views of their
    blocks while it runs (the blocks go back to the submitter afterwards)."""
    blocks = [shared_memory.SharedMemory(name=array.block) for array in shared]
    try:
        return function(job, *(np.ndarray(array.shape, array.dtype, block.buf)
                               for array, block in zip(shared, blocks)))
    finally:
        for block in blocks:
            block.close()


class _SharedBlocks:
    """The submitter's shared-memory blocks: one per array in flight, reused when its job is
    done, replaced by a larger one when an array does not fit."""

    def __init__(self):
        self.free, self.used = [], set()

    def put(self, array):
        """``array`` copied into a free block: (the block, its SharedArray)."""
        array = np.ascontiguousarray(array)
        fitting = [b for b in self.free if b.size >= array.nbytes]
        if fitting:
            block = fitting[0]
            self.free.remove(block)
        else:
            if self.free:  # too small for the arrays that come now: let it go
                self._release(self.free.pop())
            block = shared_memory.SharedMemory(create=True, size=max(array.nbytes, 1))
        np.ndarray(array.shape, array.dtype, block.buf)[...] = array
        self.used.add(block)
        return block, SharedArray(block.name, array.shape, array.dtype.str)

    def give_back(self, blocks):
        for block in blocks:
            self.used.discard(block)
            self.free.append(block)

    @staticmethod
    def _release(block):
        block.close()
        block.unlink()

    def close(self):
        for block in [*self.free, *self.used]:
            self._release(block)
        self.free, self.used = [], set()


def check_alive(processes):
    """UserError once one of a pool's worker ``processes`` has died (the out-of-memory killer,
    a signal): the pool never returns the job it held, and would be waited for forever."""
    for process in processes:
        if process.exitcode is not None:
            raise UserError(f"a worker process died ({_how_it_ended(process.exitcode)}) "
                            f"before the jobs handed to it were done; a rerun makes the rest")


def _how_it_ended(exitcode):
    """How a worker process ended, for a one-line error: its exit code, or the signal that
    killed it (SIGKILL: most often the kernel's out-of-memory killer)."""
    if exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        return f"killed by signal {-exitcode}"
    return f"killed by {name}" + (": out of memory?" if -exitcode == signal.SIGKILL else "")


class WorkerQueue:
    """Runs ``function(job, *arrays)`` for each submitted job: inline (``workers`` 0) or in a
    pool of ``workers`` processes, with a bounded backlog so memory stays flat while the
    submitter (the network) works on the next batch; the NumPy ``arrays`` of a job reach the
    workers through shared memory. Errors surface in ``submit`` or ``close``. Forked workers
    must not touch CUDA, which the submitter may have initialised (inference's processes have,
    under NCCL): the jobs are NumPy and file work.
    A worker that dies (the out-of-memory killer, a signal) takes its job with it and the pool
    never says so: a submitter waiting for a job checks the workers, and the first death it
    sees is a UserError (which job was lost is not known; the blocks are let go as after any
    error)."""

    def __init__(self, function, workers=0, fork=True):
        self.function, self.workers = function, workers
        self.pool = worker_pool(workers, fork) if workers > 0 else None
        # the pool's processes (it keeps them in ``_pool``, and replaces a dead one unseen)
        self.processes = list(self.pool._pool) if self.pool is not None else []
        self.pending = collections.deque()  # (result, its shared blocks)
        self.blocks = _SharedBlocks()

    def submit(self, job, arrays=()):
        if self.pool is None:
            self.function(job, *arrays)
            return
        taken = [self.blocks.put(array) for array in arrays]
        blocks, shared = [block for block, _ in taken], [array for _, array in taken]
        call = (_with_arrays, (self.function, job, shared)) if arrays else (self.function, (job,))
        self.pending.append((self.pool.apply_async(*call), blocks))
        while len(self.pending) > self._backlog(arrays):
            self._wait_oldest()

    def _backlog(self, arrays):
        """Jobs in flight: BACKLOG_PER_WORKER per worker, or with arrays (their blocks stay
        mapped until the job is done) one running and one waiting per worker."""
        return (2 if arrays else BACKLOG_PER_WORKER) * self.workers

    def _wait_oldest(self):
        result, blocks = self.pending.popleft()
        try:
            while not result.ready():
                check_alive(self.processes)
                result.wait(WORKER_CHECK_SECONDS)
            result.get()
        finally:
            self.blocks.give_back(blocks)

    def close(self):
        """Wait for every submitted job."""
        while self.pending:
            self._wait_oldest()
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            self.pool = None
        self.blocks.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        try:
            if exc_type is None:
                self.close()
        finally:
            if self.pool is not None:  # an error: stop the workers without waiting
                self.pool.terminate()
                self.pool.join()
                self.pool = None
            self.blocks.close()
