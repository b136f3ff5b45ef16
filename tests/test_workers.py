"""Worker processes and the signals a job gets (lib.workers)."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from lib.workers import WorkerQueue, ignore_stop_signals, worker_pool

# What a job whose worker process was killed by SIGKILL ends with.
WORKER_DIED = ("a worker process died (killed by SIGKILL: out of memory?) before the jobs "
               "handed to it were done; a rerun makes the rest")


def _run_script(path, script):
    """Run ``script`` as the file ``path`` in a new interpreter (a pool's workers need a real
    main module); a minute at most, a safety net for a hang."""
    path.write_text(script)
    return subprocess.run([sys.executable, str(path)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": REPO}, timeout=60)


def _pid(_):
    return os.getpid()


def _dispositions_after(start):
    """A worker's SIGINT and SIGTERM dispositions after ``start()`` (then put back, so that
    the pool can still end it)."""
    signals = (signal.SIGINT, signal.SIGTERM)
    saved = [signal.getsignal(signum) for signum in signals]
    if start is not None:
        start()
    found = [signal.getsignal(signum) for signum in signals]
    for signum, handler in zip(signals, saved):
        signal.signal(signum, handler)
    return found


@pytest.mark.parametrize("fork", [True, False])
def test_pool_workers_leave_ctrl_c_to_the_parent_and_end_on_sigterm(fork):
    """Ctrl-C reaches every process of a terminal's job: the parent alone reports it. SIGTERM
    is how the pool's terminate() ends its workers."""
    with worker_pool(1, fork=fork) as pool:
        assert pool.apply(_dispositions_after, (None,)) == [signal.SIG_IGN, signal.SIG_DFL]


def test_forked_pool_workers_end_on_sigterm_whatever_handler_their_parent_had():
    """Inference raises on SIGTERM while it runs: a pool forked then kept that handler, and
    its terminate() made every worker print a traceback instead of ending quietly."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with worker_pool(1) as pool:
            assert pool.apply(_dispositions_after, (None,)) == [signal.SIG_IGN, signal.SIG_DFL]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_loader_workers_leave_ctrl_c_and_sigterm_to_the_training():
    """A DataLoader worker that died of a scheduler's SIGTERM would fail the batch the
    training finishes before it saves."""
    with worker_pool(1) as pool:
        assert pool.apply(_dispositions_after, (ignore_stop_signals,)) == [signal.SIG_IGN] * 2


def test_a_queue_that_stops_on_an_error_terminates_its_workers():
    with pytest.raises(RuntimeError):
        with WorkerQueue(_pid, workers=2) as queue:
            queue.submit(0)
            pids = {result.get() for result, _ in queue.pending}
            raise RuntimeError
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _checksum_to_file(path, scores, labels):
    with open(path, "w") as f:
        f.write(f"{scores.shape} {scores.dtype} {float(scores.sum()):.6f} {int(labels.sum())}")


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm")
@pytest.mark.parametrize("workers", [0, 2])
def test_a_jobs_arrays_reach_the_worker_through_shared_memory_and_are_let_go(tmp_path, workers):
    """Stage 3's scores of a COCO image are 100 MB: through a pipe they would be pickled and
    copied several times; the blocks are reused and released at the end."""
    before = set(os.listdir("/dev/shm"))
    rng = np.random.default_rng(0)
    jobs = [(str(tmp_path / f"{i}.txt"), rng.random((3, 20 + i, 30)).astype(np.float32),
             rng.integers(0, 9, (5, 5)).astype(np.uint8)) for i in range(12)]
    with WorkerQueue(_checksum_to_file, workers) as queue:
        for path, scores, labels in jobs:
            queue.submit(path, (scores, labels))
        if workers:
            assert len(queue.blocks.free) + len(queue.blocks.used) <= 2 * (2 * workers + 1)
    for path, scores, labels in jobs:
        assert open(path).read() == (f"{scores.shape} float32 {float(scores.sum()):.6f} "
                                     f"{int(labels.sum())}")
    assert set(os.listdir("/dev/shm")) == before


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm")
def test_shared_blocks_outlive_the_workers_that_read_them(tmp_path):
    """A forked worker that started its own resource tracker unlinked the blocks it had read
    when it ended: the queue's own release then failed."""
    script = (
        "import numpy as np\n"
        "from lib.workers import WorkerQueue\n"
        "def total(job, a):\n"
        "    return float(a.sum())\n"
        "if __name__ == '__main__':\n"
        "    rng = np.random.default_rng(0)\n"
        "    with WorkerQueue(total, 2) as queue:\n"
        "        for i in range(10):\n"
        "            queue.submit(i, (rng.random((21, 30 + 7 * (i % 5), 40)),))\n")
    done = _run_script(tmp_path / "shared_queue.py", script)
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm")
def test_a_worker_that_dies_stops_the_queue_with_one_line_and_its_blocks_go(tmp_path):
    """A pool never returns the job of a worker that died (the out-of-memory killer during a
    large CRF): the submitter waited for it forever, its shared blocks mapped. Here job 3's
    worker kills itself; the queue, run in a script, has a minute (a safety net, not the
    test: it stops within a fraction of a second)."""
    script = (
        "import os, signal\n"
        "import numpy as np\n"
        "from lib.errors import UserError\n"
        "from lib.workers import WorkerQueue\n"
        "def write(job, scores):\n"
        "    if job == 3:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "if __name__ == '__main__':\n"
        "    blocks = set()\n"
        "    try:\n"
        "        with WorkerQueue(write, 2) as queue:\n"
        "            for job in range(20):\n"
        "                queue.submit(job, (np.zeros((3, 40, 40)),))\n"
        "                blocks |= {block.name for block in queue.blocks.used}\n"
        "    except UserError as exc:\n"
        "        print(exc)\n"
        "    print(sorted(b for b in blocks if os.path.exists('/dev/shm/' + b.lstrip('/'))))\n")
    done = _run_script(tmp_path / "dying_worker.py", script)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.splitlines() == [WORKER_DIED, "[]"]


def test_a_worker_that_dies_stops_imap_in_workers_with_one_line(tmp_path):
    """The same for the evaluator's and the COCO converter's pool: a task whose worker dies
    never comes back, and the caller waited for it forever (a script with a minute, a safety
    net)."""
    script = (
        "import os, signal\n"
        "from lib.errors import UserError\n"
        "from lib.workers import imap_in_workers\n"
        "def square(task):\n"
        "    if task == 3:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return task * task\n"
        "if __name__ == '__main__':\n"
        "    try:\n"
        "        print(sorted(imap_in_workers(square, range(8), 2)))\n"
        "    except UserError as exc:\n"
        "        print(exc)\n")
    done = _run_script(tmp_path / "dying_imap.py", script)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.splitlines() == [WORKER_DIED]
