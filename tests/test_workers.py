"""Worker processes leave Ctrl-C and SIGTERM to their parent (lib.workers)."""
import signal

from lib.workers import STOP_SIGNALS, worker_pool


def _dispositions(_):
    return [signal.getsignal(signum) for signum in STOP_SIGNALS]


def test_pool_workers_ignore_ctrl_c_and_sigterm():
    """A scheduler's SIGTERM reaches every process of a job (SLURM): a CRF worker that died of
    it would leave the training, which stops at the end of its iteration, waiting for it."""
    assert set(STOP_SIGNALS) == {signal.SIGINT, signal.SIGTERM}
    for fork in (True, False):
        with worker_pool(1, fork=fork) as pool:
            assert pool.map(_dispositions, [0]) == [[signal.SIG_IGN, signal.SIG_IGN]]
