"""The worker side of the batch CRF (lib.losses.batch_crf.BatchCRF), apart from it so that the
worker processes import NumPy and pydensecrf only: unpickling a function of lib.losses loads
that package, hence torch (1.5 s per worker on a 2-core machine, and its memory).

The parent puts a batch's unaries into one shared-memory block, each worker reads its images'
unaries there and writes their marginals behind them.
"""
import ctypes
from multiprocessing import shared_memory

import numpy as np

from lib.crf import dense_crf

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
