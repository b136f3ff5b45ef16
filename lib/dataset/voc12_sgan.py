"""Images + saliency + initial seeds: the SGAN training and inference datasets.

Recipe 2 (and 12, semi-supervised), for any dataset of lib.dataset.description (VOC 2012 by
default, as published; COCO 2014): its image paths, and its C classes for the tags'
multi-hot label and the seed target. Items hold only per-image arrays (the h x h saliency
mask, never the N x N attention masks, which the model builds on its device).
"""
import math
import os

import numpy as np
import torch
from torch.utils.data import Dataset

from lib.dataset.description import VOC12
from lib.dataset.strong import read_ground_truth
from lib.dataset.tags import load_tags
from lib.image import feature_size, read_grey, read_image, scipy_zoom_to, zoom_to
from lib.normalisation import normalise_image
from lib.voc import BG_THRESH, BGR_MEAN, SAL_THRESH


def saliency_mask(sal, h, sal_thresh):
    """S x S uint8 saliency -> h x h uint8 0/1 mask (> sal_thresh), border ring cleared."""
    small = zoom_to(sal, (h, h), order=1).astype(np.float64) / 255.0
    mask = (small > sal_thresh).astype(np.uint8)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 0
    return mask


def saliency_background(sal, h, bg_thresh=BG_THRESH):
    """Full-size uint8 saliency -> bool h x h background of the seeds (recipe 5 step 2).

    The published arithmetic, in float32 throughout: saliency / 255 zoomed straight to h x h
    (order 1), then ``< bg_thresh``. Cells whose exact value is 0.06 are common on real maps
    (the zoom weights lie on a fine lattice), and float64 rounds many to the other side.
    """
    small = scipy_zoom_to(sal.astype(np.float32) / np.float32(255), (h, h), order=1)
    return small < np.float32(bg_thresh)


def seed_target(seed, h, num_fg_classes=VOC12.num_fg_classes):
    """S x S uint8 seed -> h x h int64 target: class c in 1..C -> c - 1, else the ignore
    index C (C = ``num_fg_classes``)."""
    small = zoom_to(seed, (h, h), order=0).astype(np.int64)
    return np.where((small >= 1) & (small <= num_fg_classes), small - 1, num_fg_classes)


def multi_hot(classes, num_fg_classes=VOC12.num_fg_classes):
    """Tags in 1..C -> float32 C-vector (C = ``num_fg_classes``)."""
    label = np.zeros(num_fg_classes, dtype=np.float32)
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
    """A dataset tree's names (the sorted keys of the tags file), tags and resized images;
    ``description`` (lib.dataset.description) says where the images lie and how many classes
    the tags may name."""

    def __init__(self, voc12_root, cue_file, new_size, mean, std, description=VOC12):
        self.root = voc12_root
        self.description = description
        self.tags = load_tags(os.path.join(voc12_root, cue_file), description)
        self.names = sorted(self.tags)
        self.new_size = new_size
        self.feat_size = feature_size(new_size)
        self.mean, self.std = mean, std

    def image_path(self, name):
        return self.description.image_path(self.root, name)

    def label(self, name):
        """The multi-hot label of image ``name``'s tags (float32 C)."""
        return multi_hot(self.tags[name], self.description.num_fg_classes)

    def resized_image(self, name):
        """The BGR image resized to S x S (uint8), and its original (H, W)."""
        image = read_image(self.image_path(name))
        return zoom_to(image, (self.new_size, self.new_size), 1), image.shape[:2]


class _VOC12SalBase(VOC12Images):
    """Images with their saliency maps."""

    def __init__(self, voc12_root, cue_file, new_size, mean, std, sal_subdir, sal_thresh,
                 description=VOC12):
        super().__init__(voc12_root, cue_file, new_size, mean, std, description)
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
    """Training samples (recipe 2): dicts of name, image, label, sal, seed, size.

    ``seed`` is the seed branch's target. Weakly supervised (``strong_names`` None) it comes
    from the initial seed ``ini_seed/<seed_subdir>/NAME.png``. Semi-supervised (recipe 12:
    ``strong_names`` a collection) names in it take their ground truth
    ``<gt_dir>/NAME.png`` instead, through the same resizing, flip and mapping (class c ->
    c - 1; background and 255 -> the ignore index C), and the other names have no target (all
    ignore). With ``max_iters`` the name list is repeated to cover at least that many samples.
    Flips are drawn from ``(flip_seed, index)`` so they do not depend on workers or order.
    With ``normalise`` false the image stays uint8 BGR S x S x 3 (resized and flipped), a
    quarter of the bytes, for :func:`normalise_on_device` to finish on the model's device.
    """

    def __init__(self, voc12_root, cue_file, max_iters=None, new_size=321, mirror=True,
                 mean=BGR_MEAN, std=None, sal_subdir="sal_snet", seed_subdir="base_30_bg",
                 sal_thresh=SAL_THRESH, flip_seed=7, normalise=True, strong_names=None,
                 gt_dir=VOC12.seed_gt, description=VOC12):
        super().__init__(voc12_root, cue_file, new_size, mean, std, sal_subdir, sal_thresh,
                         description)
        self.seed_dir = os.path.join(voc12_root, "ini_seed", seed_subdir)
        self.gt_dir = os.path.join(voc12_root, gt_dir)
        self.strong_names = None if strong_names is None else frozenset(strong_names)
        self.normalise = normalise
        self.mirror = mirror
        self.flip_seed = flip_seed
        self.samples = repeat_names(self.names, max_iters)

    def seed_path(self, name):
        return os.path.join(self.seed_dir, name + ".png")

    def gt_path(self, name):
        return os.path.join(self.gt_dir, name + ".png")

    def target_source(self, name):
        """The full-size map the seed target of ``name`` comes from, or None for no target."""
        if self.strong_names is None:
            return read_grey(self.seed_path(name))
        if name in self.strong_names:
            return read_ground_truth(self.gt_path(name), self.description)
        return None

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        name = self.samples[index]
        image, sal, _, size = self._load_resized(name)
        h = self.feat_size
        seed = self.target_source(name)
        if seed is not None:
            seed = zoom_to(seed, (self.new_size, self.new_size), 0)
        if self.normalise:
            image = normalise_image(image, self.mean, self.std)
        if self.mirror and is_flipped(self.flip_seed, index):
            image = image[:, :, ::-1] if self.normalise else image[:, ::-1]
            sal = sal[:, ::-1]
            seed = None if seed is None else seed[:, ::-1]
        ignore = self.description.seed_ignore
        target = (np.full((h, h), ignore, dtype=np.int64) if seed is None
                  else seed_target(np.ascontiguousarray(seed), h, self.description.num_fg_classes))
        return {
            "name": name,
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "label": torch.from_numpy(self.label(name)),
            "sal": torch.from_numpy(saliency_mask(np.ascontiguousarray(sal), h, self.sal_thresh)),
            "seed": torch.from_numpy(target),
            "size": torch.tensor(size, dtype=torch.int64),
        }


class VOC12SalInferDataset(_VOC12SalBase):
    """Inference samples (recipe 5): the training preprocessing without flip, plus ``bg``.

    As published, the input side is ``new_size`` (config key ``resize``), the attention mask
    ``sal`` comes from ``sal/<sal_subdir>`` with ``sal_thresh``, and ``bg`` (bool h x h,
    :func:`saliency_background`) from ``sal/<bg_subdir>`` (config key ``sdnet_path``; default
    ``sal_subdir``) with ``bg_thresh``. With ``normalise`` false the image stays uint8 BGR
    S x S x 3, for :func:`normalise_on_device`.
    """

    def __init__(self, voc12_root, cue_file, new_size=321, mean=BGR_MEAN, std=None,
                 sal_subdir="sal_snet", sal_thresh=SAL_THRESH, names=None, normalise=True,
                 bg_subdir=None, bg_thresh=BG_THRESH, description=VOC12):
        super().__init__(voc12_root, cue_file, new_size, mean, std, sal_subdir, sal_thresh,
                         description)
        self.bg_dir = os.path.join(voc12_root, "sal", bg_subdir or sal_subdir)
        self.bg_thresh = bg_thresh
        self.normalise = normalise
        if names is not None:
            self.names = list(names)

    def bg_path(self, name):
        return os.path.join(self.bg_dir, name + ".png")

    def map_paths(self):
        """The saliency maps an item reads, for lib.dataset.check.check_files: kind -> path."""
        paths = {"saliency map": self.sal_path}
        if self.bg_dir != self.sal_dir:
            paths["background saliency map"] = self.bg_path
        return paths

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        name = self.names[index]
        image, sal, sal_full, size = self._load_resized(name)
        if self.bg_dir != self.sal_dir:
            sal_full = read_grey(self.bg_path(name))
        h = self.feat_size
        return {
            "name": name,
            "image": torch.from_numpy(normalise_image(image, self.mean, self.std)
                                      if self.normalise else image),
            "label": torch.from_numpy(self.label(name)),
            "sal": torch.from_numpy(saliency_mask(sal, h, self.sal_thresh)),
            "bg": torch.from_numpy(saliency_background(sal_full, h, self.bg_thresh)),
            "size": torch.tensor(size, dtype=torch.int64),
        }
