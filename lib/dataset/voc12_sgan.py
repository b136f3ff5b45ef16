"""VOC2012 + saliency + initial seeds: the SGAN training and inference datasets.

SPEC section 2. Items hold only per-image arrays (the h x h saliency mask, never the N x N
attention masks, which the model builds on its device).
"""
import math
import os

import cv2
import numpy as np
import scipy.ndimage as nd
import torch
from torch.utils.data import Dataset

from lib.dataset.tags import load_tags

NUM_FG_CLASSES = 20
SEED_IGNORE = 20  # the seed branch's ignore index at feature size
BGR_MEAN = (104.008, 116.669, 122.675)


def feature_size(new_size):
    """Side of the stride-8 feature map for an input of side ``new_size`` (ceil(S / 8))."""
    return math.ceil(new_size / 8)


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


def normalise_image(image_bgr, mean=BGR_MEAN, std=None):
    """uint8 BGR HWC -> float32 CHW: minus the BGR mean, or (std given) RGB/255, minus mean, / std.

    Leading axes are kept: a (batch, H, W, 3) stack gives (batch, 3, H, W).
    """
    image = image_bgr.astype(np.float64)  # float64 arithmetic, then float32, as published
    if std is None:
        image -= np.asarray(mean)
    else:
        image = (image[..., ::-1] / 255.0 - np.asarray(mean)) / np.asarray(std)
    return np.ascontiguousarray(np.moveaxis(image, -1, -3), dtype=np.float32)


def normalise_on_device(images, mean=BGR_MEAN, std=None, channels_last=False):
    """:func:`normalise_image` of a uint8 BGR (batch, S, S, 3) tensor, on its own device.

    Returns float32 (batch, 3, S, S) with exactly normalise_image's values, so a loader can
    ship uint8 images; laid out channels-last if asked. On the CPU, NumPy does it (faster
    there than torch in float64).
    """
    if images.device.type == "cpu":
        out = torch.from_numpy(normalise_image(images.numpy(), mean, std))
    else:
        out = normalise_tensor(images, mean, std)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def normalise_tensor(images, mean=BGR_MEAN, std=None):
    """:func:`normalise_on_device` in torch: the same float64 arithmetic, then float32."""
    image = images.to(torch.float64)
    mean = torch.tensor(mean, dtype=torch.float64, device=images.device)
    if std is None:
        image = image - mean
    else:
        std = torch.tensor(std, dtype=torch.float64, device=images.device)
        image = (image.flip(-1) / 255.0 - mean) / std
    return image.permute(0, 3, 1, 2).to(torch.float32).contiguous()


def saliency_mask(sal, h, sal_thresh):
    """S x S uint8 saliency -> h x h uint8 0/1 mask (> sal_thresh), border ring cleared."""
    small = zoom_to(sal, (h, h), order=1).astype(np.float64) / 255.0
    mask = (small > sal_thresh).astype(np.uint8)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 0
    return mask


def seed_target(seed, h):
    """S x S uint8 seed -> h x h int64 target: class c in 1..20 -> c - 1, else the ignore index."""
    small = zoom_to(seed, (h, h), order=0).astype(np.int64)
    return np.where((small >= 1) & (small <= NUM_FG_CLASSES), small - 1, SEED_IGNORE)


def multi_hot(classes):
    """Tags in 1..20 -> float32 20-vector."""
    label = np.zeros(NUM_FG_CLASSES, dtype=np.float32)
    label[np.asarray(classes) - 1] = 1
    return label


def repeat_names(names, max_iters):
    """The name list repeated to cover at least ``max_iters`` samples (all of it if None)."""
    return names * math.ceil(max_iters / len(names)) if max_iters else names


def is_flipped(flip_seed, index):
    """The p = 0.5 flip of sample ``index``, drawn from ``(flip_seed, index)`` alone so that
    it does not depend on workers, processes or order."""
    return np.random.default_rng((flip_seed, index)).random() < 0.5


class VOC12Images(Dataset):
    """A VOC tree's names (the sorted keys of the tags file), tags and resized images."""

    def __init__(self, voc12_root, cue_file, new_size, mean, std):
        self.root = voc12_root
        self.tags = load_tags(os.path.join(voc12_root, cue_file))
        self.names = sorted(self.tags)
        self.new_size = new_size
        self.feat_size = feature_size(new_size)
        self.mean, self.std = mean, std

    def image_path(self, name):
        return os.path.join(self.root, "JPEGImages", name + ".jpg")

    def resized_image(self, name):
        """The BGR image resized to S x S (uint8), and its original (H, W)."""
        image = read_image(self.image_path(name))
        return zoom_to(image, (self.new_size, self.new_size), 1), image.shape[:2]


class _VOC12SalBase(VOC12Images):
    """Images with their saliency maps."""

    def __init__(self, voc12_root, cue_file, new_size, mean, std, sal_subdir, sal_thresh):
        super().__init__(voc12_root, cue_file, new_size, mean, std)
        self.sal_dir = os.path.join(voc12_root, "sal", sal_subdir)
        self.sal_thresh = sal_thresh

    def sal_path(self, name):
        return os.path.join(self.sal_dir, name + ".png")

    def _load_resized(self, name):
        """Image (BGR) and saliency resized to S x S, the full-size saliency, and (H, W)."""
        image, size = self.resized_image(name)
        sal = read_grey(self.sal_path(name))
        return image, zoom_to(sal, (self.new_size, self.new_size), 1), sal, size


class VOC12ClsSalDataset(_VOC12SalBase):
    """Training samples (SPEC section 2): dicts of name, image, label, sal, seed, size.

    With ``max_iters`` the name list is repeated to cover at least that many samples.
    Flips are drawn from ``(flip_seed, index)`` so they do not depend on workers or order.
    With ``normalise`` false the image stays uint8 BGR S x S x 3 (resized and flipped), a
    quarter of the bytes, for :func:`normalise_on_device` to finish on the model's device.
    """

    def __init__(self, voc12_root, cue_file, max_iters=None, new_size=321, mirror=True,
                 mean=BGR_MEAN, std=None, sal_subdir="sal_snet", seed_subdir="base_30_bg",
                 sal_thresh=0.06, flip_seed=7, normalise=True):
        super().__init__(voc12_root, cue_file, new_size, mean, std, sal_subdir, sal_thresh)
        self.seed_dir = os.path.join(voc12_root, "ini_seed", seed_subdir)
        self.normalise = normalise
        self.mirror = mirror
        self.flip_seed = flip_seed
        self.samples = repeat_names(self.names, max_iters)

    def seed_path(self, name):
        return os.path.join(self.seed_dir, name + ".png")

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        name = self.samples[index]
        image, sal, _, size = self._load_resized(name)
        seed = zoom_to(read_grey(self.seed_path(name)), (self.new_size, self.new_size), 0)
        if self.normalise:
            image = normalise_image(image, self.mean, self.std)
        if self.mirror and is_flipped(self.flip_seed, index):
            image = image[:, :, ::-1] if self.normalise else image[:, ::-1]
            sal, seed = sal[:, ::-1], seed[:, ::-1]
        h = self.feat_size
        return {
            "name": name,
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "label": torch.from_numpy(multi_hot(self.tags[name])),
            "sal": torch.from_numpy(saliency_mask(np.ascontiguousarray(sal), h, self.sal_thresh)),
            "seed": torch.from_numpy(seed_target(np.ascontiguousarray(seed), h)),
            "size": torch.tensor(size, dtype=torch.int64),
        }


class VOC12SalInferDataset(_VOC12SalBase):
    """Inference samples: the training preprocessing without flip, plus ``bg``.

    ``bg`` (bool h x h) is SPEC section 5 step 2: the full-size saliency / 255 zoomed
    straight to h x h (order 1, float) below ``sal_thresh``. With ``normalise`` false the
    image stays uint8 BGR S x S x 3, for :func:`normalise_on_device`.
    """

    def __init__(self, voc12_root, cue_file, new_size=321, mean=BGR_MEAN, std=None,
                 sal_subdir="sal_snet", sal_thresh=0.06, names=None, normalise=True):
        super().__init__(voc12_root, cue_file, new_size, mean, std, sal_subdir, sal_thresh)
        self.normalise = normalise
        if names is not None:
            self.names = list(names)

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        name = self.names[index]
        image, sal, sal_full, size = self._load_resized(name)
        h = self.feat_size
        bg = zoom_to(sal_full.astype(np.float64) / 255.0, (h, h), order=1) < self.sal_thresh
        return {
            "name": name,
            "image": torch.from_numpy(normalise_image(image, self.mean, self.std)
                                      if self.normalise else image),
            "label": torch.from_numpy(multi_hot(self.tags[name])),
            "sal": torch.from_numpy(saliency_mask(sal, h, self.sal_thresh)),
            "bg": torch.from_numpy(bg),
            "size": torch.tensor(size, dtype=torch.int64),
        }
