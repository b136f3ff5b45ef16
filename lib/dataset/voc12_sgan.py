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
    """Resize the first two axes to ``out_hw`` with scipy.ndimage.zoom (corner-aligned)."""
    factors = (out_hw[0] / array.shape[0], out_hw[1] / array.shape[1]) + (1,) * (array.ndim - 2)
    return nd.zoom(array, factors, order=order)


def normalise_image(image_bgr, mean=BGR_MEAN, std=None):
    """uint8 BGR HWC -> float32 CHW: minus the BGR mean, or (std given) RGB/255, minus mean, / std."""
    image = image_bgr.astype(np.float64)  # float64 arithmetic, then float32, as published
    if std is None:
        image -= np.asarray(mean)
    else:
        image = (image[:, :, ::-1] / 255.0 - np.asarray(mean)) / np.asarray(std)
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)


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


class _VOC12SalBase(Dataset):
    """Names from the tags file (sorted), file paths, and the shared preprocessing."""

    def __init__(self, voc12_root, cue_file, new_size, mean, std, sal_subdir, sal_thresh):
        self.root = voc12_root
        self.tags = load_tags(os.path.join(voc12_root, cue_file))
        self.names = sorted(self.tags)
        self.new_size = new_size
        self.feat_size = feature_size(new_size)
        self.mean, self.std = mean, std
        self.sal_dir = os.path.join(voc12_root, "sal", sal_subdir)
        self.sal_thresh = sal_thresh

    def image_path(self, name):
        return os.path.join(self.root, "JPEGImages", name + ".jpg")

    def sal_path(self, name):
        return os.path.join(self.sal_dir, name + ".png")

    def _load_resized(self, name):
        """Image (BGR) and saliency resized to S x S, and the original (H, W)."""
        image = read_image(self.image_path(name))
        sal = read_grey(self.sal_path(name))
        size = image.shape[:2]
        s = self.new_size
        return zoom_to(image, (s, s), 1), zoom_to(sal, (s, s), 1), sal, size


class VOC12ClsSalDataset(_VOC12SalBase):
    """Training samples (SPEC section 2): dicts of name, image, label, sal, seed, size.

    With ``max_iters`` the name list is repeated to cover at least that many samples.
    Flips are drawn from ``(flip_seed, index)`` so they do not depend on workers or order.
    """

    def __init__(self, voc12_root, cue_file, max_iters=None, new_size=321, mirror=True,
                 mean=BGR_MEAN, std=None, sal_subdir="sal_snet", seed_subdir="base_30_bg",
                 sal_thresh=0.06, flip_seed=7):
        super().__init__(voc12_root, cue_file, new_size, mean, std, sal_subdir, sal_thresh)
        self.seed_dir = os.path.join(voc12_root, "ini_seed", seed_subdir)
        self.mirror = mirror
        self.flip_seed = flip_seed
        self.samples = self.names
        if max_iters:
            self.samples = self.names * math.ceil(max_iters / len(self.names))

    def seed_path(self, name):
        return os.path.join(self.seed_dir, name + ".png")

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        name = self.samples[index]
        image, sal, _, size = self._load_resized(name)
        seed = zoom_to(read_grey(self.seed_path(name)), (self.new_size, self.new_size), 0)
        image = normalise_image(image, self.mean, self.std)
        if self.mirror and np.random.default_rng((self.flip_seed, index)).random() < 0.5:
            image, sal, seed = image[:, :, ::-1], sal[:, ::-1], seed[:, ::-1]
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
    straight to h x h (order 1, float) below ``sal_thresh``.
    """

    def __init__(self, voc12_root, cue_file, new_size=321, mean=BGR_MEAN, std=None,
                 sal_subdir="sal_snet", sal_thresh=0.06, names=None):
        super().__init__(voc12_root, cue_file, new_size, mean, std, sal_subdir, sal_thresh)
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
            "image": torch.from_numpy(normalise_image(image, self.mean, self.std)),
            "label": torch.from_numpy(multi_hot(self.tags[name])),
            "sal": torch.from_numpy(saliency_mask(sal, h, self.sal_thresh)),
            "bg": torch.from_numpy(bg),
            "size": torch.tensor(size, dtype=torch.int64),
        }
