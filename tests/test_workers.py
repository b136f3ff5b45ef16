"""Worker processes leave Ctrl-C and a scheduler's SIGTERM to their parent (lib.workers)."""
import os
import signal
import time

import pytest

from lib.workers import WorkerQueue, worker_pool


def _pid(_):
    return os.getpid()


def _slow_pid(_):
    time.sleep(0.2)
    return os.getpid()


@pytest.mark.parametrize("fork", [True, False])
def test_pool_workers_outlive_ctrl_c_and_sigterm_but_not_the_pools_terminate(fork):
    """A scheduler's SIGTERM reaches every process of a job (SLURM): a CRF worker that died of
    it would leave the training, which stops at the end of its iteration, waiting for it."""
    pool = worker_pool(1, fork=fork)
    pid = pool.apply(_pid, (0,))
    for signum in (signal.SIGINT, signal.SIGTERM):
        os.kill(pid, signum)
    assert pool.apply(_slow_pid, (0,)) == pid  # the same worker, still at work
    pool.terminate()  # ends it (a worker that ignored SIGTERM would hang this join)
    pool.join()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_queue_that_stops_on_an_error_terminates_its_workers():
    with pytest.raises(RuntimeError):
        with WorkerQueue(_pid, workers=2) as queue:
            queue.submit(0)
            pids = {result.get() for result in queue.pending}
            raise RuntimeError
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
