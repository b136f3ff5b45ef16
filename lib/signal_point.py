"""A test-only hook that interrupts a job at a known point instead of after a guessed delay.

With ``SGAN_SIGNAL_AT=POINT:N:SIGNAL`` in the environment (e.g. ``atomic_write:4:SIGKILL``) a
process sends itself SIGNAL the N-th time it passes POINT, so the kill, Ctrl-C and SIGTERM
tests (tests/test_bad_input.py, test_run_folder.py ...) land at the same moment on any
machine. Points: ``atomic_write`` (a file's data are in its temporary file, not yet renamed
into place) and ``iteration`` (a training iteration and its checkpoint are done). Unset, as
everywhere but those tests, it does nothing.
"""
import os
import signal

ENV = "SGAN_SIGNAL_AT"
_REQUEST = os.environ.get(ENV, "").split(":")
_passes = {}


def reach(point):
    """Count a pass through ``point``; on the requested pass, send the requested signal."""
    if len(_REQUEST) != 3 or _REQUEST[0] != point:
        return
    _passes[point] = _passes.get(point, 0) + 1
    if _passes[point] == int(_REQUEST[1]):
        os.kill(os.getpid(), getattr(signal, _REQUEST[2]))
