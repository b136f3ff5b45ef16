"""Worker processes for work that is independent per image (decoding, CRFs, PNG writing).

Workers ignore Ctrl-C and SIGTERM: the parent gets them alone, stops the pool and reports one
line, instead of every worker printing a traceback (or dying under a training that is saving).
"""
import collections
import math
import multiprocessing
import os
import signal

BACKLOG_PER_WORKER = 4  # jobs queued per worker before the submitter waits


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and a scheduler's notice


def ignore_stop_signals(worker_id=None):
    """A worker's start (a pool's initializer, a DataLoader's worker_init_fn): leave Ctrl-C and
    SIGTERM to the parent process, which stops the job where it is whole (a training saves at
    the end of its iteration, which needs its workers); a worker still ends with its parent."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def worker_pool(workers, fork=True):
    """A ``multiprocessing`` pool of ``workers`` processes that ignore Ctrl-C. ``fork`` False
    starts them without forking this process (forkserver, else spawn): a forked copy of a
    process that has initialised CUDA is not safe."""
    method = None
    if not fork:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method).Pool(workers, initializer=ignore_stop_signals)


def imap_in_workers(function, tasks, workers):
    """Yield ``function(task)`` for each task: in this process when fewer than two workers
    would be busy, else from a pool, in completion order."""
    tasks = list(tasks)
    workers = min(workers, len(tasks))
    if workers <= 1:
        yield from map(function, tasks)
        return
    with worker_pool(workers) as pool:
        yield from pool.imap_unordered(function, tasks)


def default_workers():
    """Worker processes by default: the cores, at most 8."""
    return min(8, os.cpu_count() or 1)


def chunked(items, workers, max_chunk, chunks_per_worker=8):
    """``items`` cut into consecutive chunks: about ``chunks_per_worker`` per worker (so the
    progress bar moves and the load balances), at most ``max_chunk`` items each."""
    items = list(items)
    size = max(1, min(max_chunk, math.ceil(len(items) / (max(workers, 1) * chunks_per_worker))))
    return [items[i:i + size] for i in range(0, len(items), size)]


class WorkerQueue:
    """Runs ``function(job)`` for each submitted job: inline (``workers`` 0) or in a pool of
    ``workers`` processes, with a bounded backlog so memory stays flat while the submitter (the
    network) works on the next batch. Errors surface in ``submit`` or ``close``. A forking pool
    must be made before the submitting process initialises CUDA."""

    def __init__(self, function, workers=0, fork=True):
        self.function = function
        self.pool = worker_pool(workers, fork) if workers > 0 else None
        self.backlog = BACKLOG_PER_WORKER * max(workers, 1)
        self.pending = collections.deque()

    def submit(self, job):
        if self.pool is None:
            self.function(job)
            return
        self.pending.append(self.pool.apply_async(self.function, (job,)))
        while len(self.pending) > self.backlog:
            self.pending.popleft().get()

    def close(self):
        """Wait for every submitted job."""
        while self.pending:
            self.pending.popleft().get()
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            self.pool = None

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
