"""Ctrl-C and SIGTERM during training: stop at the end of the iteration under way, where the
weights and optimizer are whole, so that the loop saves the run there and says how to resume.
Inference has no iteration to finish (its outputs are whole files): there the first signal
raises at once (interrupting_stop_signals), and the run logs what it wrote before it ends.

Who sends what: a terminal sends Ctrl-C (SIGINT) to every process of its foreground job; a
scheduler sends SIGTERM before it preempts a job (SLURM to every process of the job, torchrun
passes its own on to its workers, Kubernetes sends it to the container's first process, which
passes it on when it spawned the job's processes itself: forwarding_stop_signals). The
first signal asks the loop to stop; every process of the job learns it at the same iteration
(the largest of their StopRequests' signals, lib.training.distributed.max_over_processes), so
they all stop there and save together.
Further SIGTERMs are ignored (a scheduler, torchrun and a parent may each send one); a second
Ctrl-C stops at once, without saving.
"""
import contextlib
import signal
import threading

from lib.errors import Interrupted
from lib.workers import STOP_SIGNALS


@contextlib.contextmanager
def _handling_stop_signals(handler):
    """``handler`` for SIGINT and SIGTERM within the block, the previous handlers after it
    (only the main thread may set handlers; elsewhere the block changes nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class StopRequests:
    """The stop a signal asked for: its number (0: none yet)."""

    def __init__(self):
        self.signum = 0

    def ask(self, signum, frame=None):
        """The signal handler: keep the first signal; a second Ctrl-C stops at once."""
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = self.signum or signum


@contextlib.contextmanager
def stop_requests():
    """Within the block, SIGINT and SIGTERM ask to stop (the StopRequests it yields) instead
    of ending the process; the loop asks after every iteration (over every process of the job:
    lib.training.distributed.max_over_processes)."""
    requests = StopRequests()
    with _handling_stop_signals(requests.ask):
        yield requests


@contextlib.contextmanager
def interrupting_stop_signals():
    """Within the block, the first SIGINT or SIGTERM raises Interrupted (exit status 130 or
    143) where the main thread is, instead of SIGTERM ending the process unannounced; as in
    training, further SIGTERMs are ignored while the work stops, and a second Ctrl-C raises
    KeyboardInterrupt at once."""
    requests = StopRequests()

    def interrupt(signum, frame):
        first = not requests.signum
        requests.ask(signum, frame)
        if first:
            raise Interrupted(f"interrupted by {signal.Signals(signum).name}", signum)

    with _handling_stop_signals(interrupt):
        yield


@contextlib.contextmanager
def forwarding_stop_signals(processes):
    """In the parent of self-spawned processes (``multiprocessing`` processes): pass SIGTERM on
    to them, leave Ctrl-C to them (a terminal sends it to each), and keep waiting for them
    instead of ending first, while they stop and save."""
    def forward(signum, frame):
        if signum != signal.SIGTERM:
            return
        for process in processes:
            if process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()  # SIGTERM

    with _handling_stop_signals(forward):
        yield
