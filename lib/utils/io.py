"""Atomic file output: write to a temporary file beside the target, then rename."""
import os
import tempfile

import cv2
import numpy as np


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` so that a reader never sees a half-written file."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make outputs private to their writer
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# Unfiltered rows: for label maps, smaller files that decode about twice as fast.
_PNG_OPTIONS = [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]


def encode_png(array):
    """PNG bytes of a uint8 grey (H x W) or BGR (H x W x 3) array."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(array), _PNG_OPTIONS)
    if not ok:
        raise OSError(f"could not encode a {array.dtype} array of shape {array.shape} as PNG")
    return buf.tobytes()


def write_png(path, array):
    """Write a uint8 grey (H x W) or BGR (H x W x 3) array as a PNG, atomically."""
    atomic_write_bytes(path, encode_png(array))


def write_jpg(path, array, quality=95):
    """Write a BGR uint8 array as a JPEG, atomically."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(array), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"could not encode {path} as JPEG")
    atomic_write_bytes(path, buf.tobytes())
