"""The dense CRF of a batch of images, in this process or in a persistent pool of processes.

Stage 3's constrain loss (SPEC 11.3) runs one small CRF per image of every batch; the CRF is
single-threaded C++ (pydensecrf), so a pool of worker processes runs the images of a batch side
by side. The pool does not fork this process (lib.workers.worker_pool with fork=False), as a
forked copy of a process that has initialised CUDA is not safe; workers ignore Ctrl-C. Every image is computed by the same code
on the same bytes wherever it runs, so the pool's results equal the serial ones bit for bit.
"""
import numpy as np

from lib.crf import dense_crf
from lib.workers import worker_pool


def _crf_of_image(task):
    """C-contiguous marginals of one image: ``task`` = (unary, image, scale, iterations).
    (pydensecrf hands back a strided view; a pickled copy would be C-ordered, so both ways
    make it C-ordered here and the batch has one layout.)"""
    unary, image, scale, iterations = task
    return np.ascontiguousarray(dense_crf(unary, image, scale=scale, iterations=iterations))


def check_crf_inputs(unary, images):
    """ValueError unless ``unary`` is N x L x h x w and ``images`` N x h x w x 3 uint8."""
    if unary.ndim != 4:
        raise ValueError(f"CRF unary must be N x L x h x w, got shape {tuple(unary.shape)}")
    count, _, height, width = unary.shape
    if tuple(images.shape) != (count, height, width, 3):
        raise ValueError(f"CRF images must be {count} x {height} x {width} x 3 for unary "
                         f"{tuple(unary.shape)}, got shape {tuple(images.shape)}")
    if images.dtype != np.uint8:
        raise ValueError(f"CRF images must be uint8, got {images.dtype}")


class BatchCRF:
    """Callable ``(unary, images, scale, iterations) -> marginals``: the dense CRF
    (lib.crf.dense_crf) of each image of a batch; unary float32 N x L x h x w energies, images
    uint8 N x h x w x 3 (passed to the CRF as they are), marginals float32 N x L x h x w
    (C-contiguous).
    ``workers=0`` runs in this process; ``workers>0`` in that many persistent processes, until
    ``close()`` (or the end of a ``with`` block)."""

    def __init__(self, workers=0):
        if workers < 0:
            raise ValueError(f"BatchCRF workers must be >= 0, got {workers}")
        self.workers = workers
        self._pool = None
        if workers > 0:
            self._pool = worker_pool(workers, fork=False)

    def __call__(self, unary, images, scale, iterations):
        unary = np.ascontiguousarray(unary, dtype=np.float32)
        images = np.asarray(images)
        check_crf_inputs(unary, images)
        tasks = [(unary[i], images[i], scale, iterations) for i in range(len(unary))]
        if self._pool is None:
            marginals = [_crf_of_image(task) for task in tasks]
        else:
            # One contiguous share of the batch per worker: the fewest messages.
            chunk = -(-len(tasks) // self.workers)
            marginals = self._pool.map(_crf_of_image, tasks, chunksize=max(chunk, 1))
        return np.stack(marginals) if marginals else np.zeros_like(unary)

    def close(self, terminate=False):
        """Stop the worker processes (nothing to do when serial); idempotent. ``terminate``
        stops them at once instead of letting them finish what they hold (after an error)."""
        if self._pool is not None:
            if terminate:
                self._pool.terminate()
            else:
                self._pool.close()
            self._pool.join()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.close(terminate=exc_type is not None)
