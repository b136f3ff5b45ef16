"""The stage-3 training sample: images and seed labels as Caffe's ImageSegData (recipe 11.2).

Per sample: read BGR uint8, resize image (INTER_LINEAR) and label (INTER_NEAREST) to
resize x resize, draw the mirror, distort (Caffe's ApplyDistort), crop at random offsets,
mirror, subtract the mean. The distortions work pixel by pixel, so they are applied after the
crop here (the same values, fewer pixels). Every random draw of sample ``index`` comes from
``numpy.random.default_rng((random_seed, index))``: mirror, then the crop offsets, then the
distortions; mirror and offsets are drawn whatever ``mirror`` and ``distort`` say, so those
switches never move the crop.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from lib.dataset.check import SHOWN, check_files
from lib.dataset.description import VOC12
from lib.dataset.distort import random_distort
from lib.dataset.strong import ground_truth_range, invalid_ground_truth
from lib.dataset.voc12_sgan import repeat_names
from lib.errors import UserError, first_few
from lib.image import read_image, read_label_png, read_prediction_png
from lib.normalisation import caffe_mean, normalise_image
from lib.voc import BGR_MEAN, IGNORE

LABEL_STRIDE = 8  # label41 = label[::8, ::8]: the pixels Caffe's Interp (shrink_factor 8) samples


def invalid_values(label, strong, dataset=VOC12):
    """The sorted values of ``label`` outside its range: seeds 0..C + 1 (C + 1 unlabeled),
    ground truth 0..C and 255 (ignore)."""
    if strong:
        return invalid_ground_truth(label, dataset)
    return np.unique(label[label > dataset.unlabeled]).tolist()


def label_ranges(dataset):
    """The ranges of seeds and ground truth, for messages: ``seeds 0..21, ground truth ...``."""
    return f"seeds 0..{dataset.unlabeled}, ground truth {ground_truth_range(dataset)}"


class VOC12SegDataset(Dataset):
    """Stage-3 training samples: dicts of ``name``, ``image`` (float32 3 x crop x crop, BGR
    minus the mean; uint8 crop x crop x 3 BGR if not ``normalise``, for
    :func:`lib.normalisation.normalise_on_device` with ``self.mean``), ``label`` (int64, the
    crop's
    label [::8, ::8]: 0 background, 1..C, C + 1 unlabeled) and ``image41`` (uint8 BGR, the
    distorted crop [::8, ::8], the image the CRF of the loss sees).

    Labels are the seed PNGs ``<label_dir>/NAME.png``; names in ``strong_names`` take the
    ground truth ``<voc12_root>/<gt_dir>/NAME.png`` instead, 255 -> C + 1 (recipe 12). With
    ``max_iters`` the name list is repeated to cover at least that many samples. ``description``
    (lib.dataset.description) says where the images lie and what C is (VOC 20, COCO 80).
    """

    def __init__(self, voc12_root, names, label_dir, resize=353, crop_size=321, mirror=True,
                 distort=True, mean=BGR_MEAN, strong_names=(), gt_dir=VOC12.seed_gt,
                 max_iters=None, random_seed=7, normalise=True, description=VOC12):
        if crop_size > resize:
            raise UserError(f"crop_size {crop_size} is larger than the resized image "
                            f"({resize} x {resize})")
        self.root = voc12_root
        self.names = list(names)
        self.samples = repeat_names(self.names, max_iters)
        self.label_dir = label_dir
        self.gt_dir = os.path.join(voc12_root, gt_dir)
        self.strong_names = frozenset(strong_names)
        self.resize, self.crop_size = resize, crop_size
        self.mirror, self.distort = mirror, distort
        self.mean = caffe_mean(mean)
        self.random_seed = random_seed
        self.normalise = normalise
        self.description = description

    def image_path(self, name):
        return self.description.image_path(self.root, name)

    def is_strong(self, name):
        return name in self.strong_names

    def label_path(self, name):
        folder = self.gt_dir if self.is_strong(name) else self.label_dir
        return os.path.join(folder, name + ".png")

    def read_label(self, name):
        """The full-size uint8 label of ``name`` in 0..C + 1; UserError naming the file if it
        is missing, unreadable or has values outside its range."""
        path, strong = self.label_path(name), self.is_strong(name)
        label = read_label_png(path) if strong else read_prediction_png(path)
        bad = invalid_values(label, strong, self.description)
        if bad:
            allowed = (ground_truth_range(self.description) if strong
                       else f"0..{self.description.unlabeled}")
            raise UserError(f"{path}: label values {first_few(bad)} outside {allowed}")
        if strong:
            label = np.where(label == IGNORE, self.description.unlabeled, label)
        return label.astype(np.uint8)

    def read_image(self, name):
        path = self.image_path(name)
        try:
            return read_image(path)
        except FileNotFoundError:
            raise UserError(f"cannot read image {path}") from None

    def draws(self, index):
        """(mirrored, h_off, w_off) of sample ``index``, and the generator, positioned for the
        distortions."""
        rng = np.random.default_rng((self.random_seed, index))
        mirrored = rng.random() < 0.5
        h_off, w_off = rng.integers(0, self.resize - self.crop_size + 1, size=2)
        return mirrored, int(h_off), int(w_off), rng

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        name = self.samples[index]
        size = (self.resize, self.resize)
        image = cv2.resize(self.read_image(name), size, interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(self.read_label(name), size, interpolation=cv2.INTER_NEAREST)
        mirrored, h_off, w_off, rng = self.draws(index)
        window = (slice(h_off, h_off + self.crop_size), slice(w_off, w_off + self.crop_size))
        image, label = np.ascontiguousarray(image[window]), label[window]
        if self.distort:
            image = random_distort(image, rng)
        if self.mirror and mirrored:
            image, label = image[:, ::-1], label[:, ::-1]
        image = np.ascontiguousarray(image)
        return {
            "name": name,
            "image": torch.from_numpy(normalise_image(image, self.mean)
                                      if self.normalise else image),
            "label": torch.from_numpy(label[::LABEL_STRIDE, ::LABEL_STRIDE].astype(np.int64)),
            "image41": torch.from_numpy(
                np.ascontiguousarray(image[::LABEL_STRIDE, ::LABEL_STRIDE])),
        }


def _label_problem(dataset, name):
    """``path (values ...)`` if the label of ``name`` is unusable, else None."""
    path, strong = dataset.label_path(name), dataset.is_strong(name)
    try:
        label = read_label_png(path) if strong else read_prediction_png(path)
    except UserError as exc:
        return str(exc)
    bad = invalid_values(label, strong, dataset.description)
    return f"{path} (values {first_few(bad)})" if bad else None


def check_seg_files(dataset, workers=8):
    """Raise one UserError, before training, if an image or label is missing, unreadable or
    of another size than its image, or if a label has values outside its range (seeds
    0..C + 1, ground truth 0..C and 255). Images are checked by their headers; labels are
    read in a pool of ``workers`` threads."""
    names = sorted(set(dataset.names))
    check_files(names, dataset.image_path, {"label": dataset.label_path}, workers, grey=False)
    with ThreadPoolExecutor(workers) as pool:
        problems = [p for p in pool.map(lambda n: _label_problem(dataset, n), names) if p]
    if problems:
        raise UserError(f"{len(problems)} of {len(names)} label PNGs have values outside their "
                        f"range ({label_ranges(dataset.description)}): "
                        f"{first_few(problems, SHOWN)}")
