"""The dense CRF of a batch of images, in this process or in a persistent pool of processes.

Stage 3's constrain loss (recipe 11.3) runs one small CRF per image of every batch; the CRF is
single-threaded C++ (pydensecrf), so a pool of worker processes runs the images of a batch side
by side. The pool does not fork this process (lib.workers.worker_executor), as a forked copy
of a process that has initialised CUDA is not safe; workers ignore Ctrl-C. Every
image is computed by the same code on the same bytes wherever it runs, so the pool's results
equal the serial ones bit for bit.
The unaries go to the workers and the marginals come back through one shared-memory block
instead of pipes: pickling 2 x 2 MB through pipes (a batch of 15 at 41 x 41) cost a quarter of
the batch's CRF time again in CPU time on two cores. This module imports NumPy (and, where a
CRF runs, pydensecrf) only, so a worker that unpickles its functions does not load torch
(1.5 s and about 700 MB per worker).
"""
import ctypes
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import shared_memory

import numpy as np

from lib.crf import dense_crf
from lib.workers import worker_executor

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
HEAP_KEPT_BYTES = 32 * 2**20  # the largest mmap threshold glibc takes

_attached = {}  # the shared block this worker last attached, by name
_heap_kept = False


def keep_freed_memory():
    """Have glibc keep freed blocks of up to 32 MB for reuse instead of unmapping them, once per
    process (a no-op without glibc). The CRF allocates and frees about 9 MB per 41 x 41 image; a
    fresh worker process mapped that anew for every image: 17,000 page faults per 8 images,
    +50% time (a long-lived process such as the trainer has raised glibc's threshold already)."""
    global _heap_kept
    if not _heap_kept:
        try:
            mallopt = ctypes.CDLL(None).mallopt
            mallopt(M_MMAP_THRESHOLD, HEAP_KEPT_BYTES)
            mallopt(M_TRIM_THRESHOLD, 2 * HEAP_KEPT_BYTES)
        except (AttributeError, OSError):
            pass
        _heap_kept = True


def image_marginals(unary, image, scale, iterations):
    """C-contiguous marginals of one image (pydensecrf hands back a strided view; every path
    makes it C-ordered, so a batch has one layout wherever its images ran)."""
    return np.ascontiguousarray(dense_crf(unary, image, scale=scale, iterations=iterations))


def block_arrays(block, shape):
    """(unary, marginals): float32 arrays of ``shape`` one after the other in ``block``."""
    size = int(np.prod(shape)) * np.dtype(np.float32).itemsize
    return (np.ndarray(shape, np.float32, block.buf),
            np.ndarray(shape, np.float32, block.buf, offset=size))


def _attach(name):
    """The parent's shared block ``name``, attached once per worker (an older one let go)."""
    if name not in _attached:
        for block in _attached.values():
            block.close()
        _attached.clear()
        _attached[name] = shared_memory.SharedMemory(name=name)
    return _attached[name]


def marginals_in_block(task):
    """A worker's share of a batch: ``task`` = (block name, batch shape, index of its first
    image, its images, scale, iterations)."""
    name, shape, first, images, scale, iterations = task
    keep_freed_memory()
    unary, marginals = block_arrays(_attach(name), shape)
    for index, image in enumerate(images, start=first):
        marginals[index] = image_marginals(unary[index], image, scale, iterations)


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
    ``close()`` (or the end of a ``with`` block). A worker that ends meanwhile (a scheduler's
    SIGTERM reaches every process of a job, while the training finishes its iteration) leaves
    the batch, and the ones after it, to this process: the same marginals."""

    def __init__(self, workers=0):
        if workers < 0:
            raise ValueError(f"BatchCRF workers must be >= 0, got {workers}")
        self.workers = workers
        self._pool = worker_executor(workers) if workers > 0 else None
        self._block = None

    def __call__(self, unary, images, scale, iterations):
        unary = np.ascontiguousarray(unary, dtype=np.float32)
        images = np.asarray(images)
        check_crf_inputs(unary, images)
        if not len(unary):
            return np.zeros_like(unary)
        if self._pool is not None:
            try:
                return self._in_workers(unary, images, scale, iterations)
            except BrokenProcessPool:  # a worker ended: this batch and the next ones here
                self.close()
        return np.stack([image_marginals(unary[i], images[i], scale, iterations)
                         for i in range(len(unary))])

    def _in_workers(self, unary, images, scale, iterations):
        """The batch in the pool: one contiguous share per worker (the fewest messages), the
        arrays through the shared block."""
        block = self._shared_block(2 * unary.nbytes)
        shared_unary, shared_marginals = block_arrays(block, unary.shape)
        shared_unary[...] = unary
        chunk = -(-len(unary) // self.workers)
        for _ in self._pool.map(marginals_in_block, [
                (block.name, unary.shape, first, images[first:first + chunk], scale, iterations)
                for first in range(0, len(unary), chunk)]):
            pass  # each share is in the block when its worker returns (or raises its error)
        return shared_marginals.copy()

    def _shared_block(self, nbytes):
        """This BatchCRF's shared-memory block of at least ``nbytes`` (a larger batch
        replaces it)."""
        if self._block is not None and self._block.size < nbytes:
            self._release_block()
        if self._block is None:
            self._block = shared_memory.SharedMemory(create=True, size=nbytes)
        return self._block

    def _release_block(self):
        if self._block is not None:
            self._block.close()
            self._block.unlink()
            self._block = None

    def close(self, terminate=False):
        """Stop the worker processes (nothing to do when serial); idempotent. ``terminate``
        drops the shares not yet started (after an error) instead of finishing them."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=terminate)
            self._pool = None
        self._release_block()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.close(terminate=exc_type is not None)
