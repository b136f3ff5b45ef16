"""Images and label maps: reading, writing and exact resizing (normalisation of the network
input: lib.normalisation).

Everything here is per-image array work shared by the datasets, the seeds, the evaluation and
the pictures. Colour images are BGR uint8 (OpenCV order); maps (saliency, seeds) are 8-bit grey;
label PNGs may be grey or palette (read as indices). Resizing follows ``scipy.ndimage.zoom``
(corner-aligned), bit for bit on uint8 (recipe 2 step 2).
"""
import io
import math
import os
import zipfile

import cv2
import numpy as np
import scipy.ndimage as nd
from PIL import Image

from lib.errors import UserError, one_line
from lib.files import atomic_write_bytes
from lib.voc import VOC_PALETTE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_GREY_DEPTHS = (b"\x08\x00", b"\x10\x00")  # IHDR bit depth 8 or 16, colour type 0 (grey)
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the empty IEND chunk that closes every PNG


def feature_size(side):
    """Side of the stride-8 feature map for an input of side ``side`` (ceil(S / 8))."""
    return math.ceil(side / 8)


def is_complete_file(path):
    """True if ``path`` is a whole PNG (signature, then the IEND chunk at the end) or a whole
    zip archive such as ``.npz`` (its end-of-directory record); False if missing or cut short."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if head == PNG_SIGNATURE:
                f.seek(max(0, size - len(PNG_END)))
                return f.read() == PNG_END
    except OSError:
        return False
    return zipfile.is_zipfile(path)


def read_image(path):
    """Read a colour image as BGR uint8 (OpenCV order)."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return image


def read_grey(path):
    """Read an 8-bit grey map (saliency, seeds) as uint8."""
    grey = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise FileNotFoundError(f"cannot read map {path}")
    return grey


def read_label_png(path):
    """Read a PNG as a 2-D integer label map (palette PNGs give indices); UserError if not."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            labels = np.asarray(image)
    except Exception as exc:  # any decoder failure means the file is unusable
        raise UserError(f"cannot read {path}: {one_line(exc) or type(exc).__name__}") from None
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{path}: expected a single-channel label PNG, got mode {mode}")
    return labels


def read_prediction_png(path):
    """:func:`read_label_png` for predictions, faster for what the seed writer makes: an
    8- or 16-bit grey PNG is decoded by OpenCV (the same values), anything else by PIL."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return read_label_png(path)  # its one-line error
    if data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and data[24:26] in PNG_GREY_DEPTHS:
        labels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if labels is not None and labels.ndim == 2:
            return labels
    return read_label_png(path)


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


def encode_palette_png(labels, palette=VOC_PALETTE):
    """PNG bytes of a uint8 H x W label map as a palette (mode P) image in the colours of
    ``palette`` ((256, 3) uint8 RGB; VOC's by default): the PNG indices are the labels, as in
    VOC's SegmentationClass."""
    labels = np.asarray(labels)
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"expected uint8 H x W labels, got {labels.dtype} {labels.shape}")
    image = Image.fromarray(np.ascontiguousarray(labels), mode="P")
    image.putpalette(np.asarray(palette, np.uint8).ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_palette_png(path, labels, palette=VOC_PALETTE):
    """Write :func:`encode_palette_png` of ``labels`` to ``path``, atomically."""
    atomic_write_bytes(path, encode_palette_png(labels, palette))


def write_jpg(path, array, quality=95):
    """Write a BGR uint8 array as a JPEG, atomically."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(array), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"could not encode {path} as JPEG")
    atomic_write_bytes(path, buf.tobytes())


def zoom_to(array, out_hw, order):
    """Resize the first two axes to ``out_hw`` with scipy.ndimage.zoom (corner-aligned).

    uint8 maps and images at order 0 or 1 take :func:`zoom_uint8`, which gives scipy's
    result bit for bit, several times faster; everything else goes to scipy.
    """
    if array.dtype == np.uint8 and order in (0, 1) and array.ndim in (2, 3) and array.size:
        return zoom_uint8(array, out_hw, order)
    return scipy_zoom_to(array, out_hw, order)


def scipy_zoom_to(array, out_hw, order):
    """:func:`zoom_to` by scipy.ndimage.zoom itself (mode constant, cval 0)."""
    factors = (out_hw[0] / array.shape[0], out_hw[1] / array.shape[1]) + (1,) * (array.ndim - 2)
    return nd.zoom(array, factors, order=order)


def _zoom_axis(n_in, n_out, order):
    """scipy's sampling of one axis: source indices, spline weights and the in-range mask.

    Output k reads input coordinate k * (n_in - 1) / (n_out - 1); order 0 takes
    floor(x + 0.5), order 1 the weights (1 - f, 1 - (1 - f)) of floor(x) and floor(x) + 1.
    A coordinate past n_in - 1 (by rounding, at the last output) gives cval 0, as in scipy.
    """
    zoom = (n_in - 1) / (n_out - 1) if n_out > 1 else 1.0
    coords = np.arange(n_out) * zoom
    inside = coords <= n_in - 1
    if order == 0:
        return (np.minimum(np.floor(coords + 0.5).astype(np.intp), n_in - 1),), (), inside
    start = np.floor(coords)
    w0 = 1.0 - (coords - start)
    start = start.astype(np.intp)
    return (np.minimum(start, n_in - 1), np.minimum(start + 1, n_in - 1)), (w0, 1.0 - w0), inside


_ZOOM_BLOCK = 16384  # float64 elements per block of output rows (stays in cache)
_NEIGHBOURS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (row, column) terms in scipy's order


def zoom_uint8(array, out_hw, order):
    """scipy.ndimage.zoom of a uint8 (H, W) or (H, W, C) array to ``out_hw``, bit for bit.

    Order 0 is a gather; order 1 adds, for each output pixel, value * w_row * w_col over
    the four neighbours in scipy's order, in float64, and rounds half up as scipy does.
    """
    height, width = array.shape[:2]
    channels = array.shape[2] if array.ndim == 3 else 1
    flat = array.reshape(height, width * channels)
    row_idx, row_w, rows_in = _zoom_axis(height, out_hw[0], order)
    col_idx, col_w, cols_in = _zoom_axis(width, out_hw[1], order)
    col_idx = [(c[:, None] * channels + np.arange(channels)).ravel() for c in col_idx]
    col_w = [np.repeat(w, channels) for w in col_w]
    if order == 0:
        out = flat[row_idx[0]][:, col_idx[0]]
    else:
        out = _bilinear_rows(flat, row_idx, row_w, col_idx, col_w, out_hw[0])
    out[~rows_in] = 0
    out[:, ~np.repeat(cols_in, channels)] = 0
    return out.reshape(tuple(out_hw) + array.shape[2:])


def _bilinear_rows(flat, row_idx, row_w, col_idx, col_w, out_rows):
    """The order-1 sum of :func:`zoom_uint8`, a block of output rows at a time."""
    columns = [flat[:, c] for c in col_idx]  # (H, out_w * C) uint8, left and right neighbours
    out = np.empty((out_rows, col_idx[0].size), np.uint8)
    step = max(1, _ZOOM_BLOCK // col_idx[0].size)
    total = np.empty((step, col_idx[0].size))
    term = np.empty_like(total)
    for first in range(0, out_rows, step):
        block = slice(first, first + step)
        n = min(step, out_rows - first)
        acc, tmp = total[:n], term[:n]
        for k, (r, c) in enumerate(_NEIGHBOURS):
            target = tmp if k else acc
            np.multiply(columns[c][row_idx[r][block]], row_w[r][block, None], out=target)
            target *= col_w[c]
            if k:
                acc += tmp
        acc += 0.5
        out[block] = acc  # truncation of x + 0.5 >= 0: scipy's rounding to uint8
    return out
