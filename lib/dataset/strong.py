"""Semi-supervised SGAN (recipe 12): the names of ``strong_list`` and their ground truth.

The names of the list file ``strong_list`` (resolved under ``dataset_root``, like
``cue_file``) have full masks, ``<gt_path>/NAME.png`` (0..C, 255 ignore): stage 2's seed
branch and stage 3's network train on them in place of seeds. Both stages read the list and
check the masks here, before training.
"""
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from lib.config import ConfigError
from lib.dataset.check import SHOWN, check_files
from lib.dataset.description import VOC12
from lib.errors import UserError, first_few
from lib.files import read_names
from lib.image import read_label_png
from lib.paths import dataset_path
from lib.voc import IGNORE


def strong_names(cfg, names):
    """The sorted names of ``strong_list``, or None if it is not set; each must be one of the
    training ``names`` (the keys of ``cue_file``)."""
    if not cfg.strong_list:
        return None
    path = dataset_path(cfg, cfg.strong_list)
    if not os.path.isfile(path):
        raise ConfigError(f"config key 'strong_list': list file not found: {path}")
    strong = sorted(set(read_names(path)))
    unknown = sorted(set(strong) - set(names))
    if unknown:
        raise UserError(f"{len(unknown)} names of strong_list {path} are not in {cfg.cue_file}: "
                        f"{first_few(unknown)}")
    return strong


def strong_note(names):
    """The training log's note on ``names`` (strong names or None): "" if not semi-supervised."""
    return "" if names is None else f", {len(names)} with ground truth (strong_list)"


def ground_truth_range(dataset):
    """The values a ground-truth label may hold, for messages: ``0..C and 255``."""
    return f"0..{dataset.num_fg_classes} and {IGNORE}"


def invalid_ground_truth(label, dataset=VOC12):
    """The sorted values of a ground-truth ``label`` outside 0..C and 255 (ignore)."""
    above = label[label > dataset.num_fg_classes]  # few pixels: 255 borders, if anything
    return np.unique(above[above != IGNORE]).tolist()


def ground_truth_problem(path, label, dataset=VOC12):
    """The one-line message for a ground truth ``label`` (read from ``path``) with values
    outside 0..C and 255, or None."""
    bad = invalid_ground_truth(label, dataset)
    if not bad:
        return None
    return (f"{path}: label values {first_few(bad)} outside {ground_truth_range(dataset)}, the "
            f"classes of dataset {dataset.name}")


def read_ground_truth(path, dataset=VOC12):
    """The uint8 ground truth at ``path`` (palette or grey PNG: label indices); UserError naming
    the file if it is missing, unreadable or has values outside 0..C and 255."""
    label = read_label_png(path)
    problem = ground_truth_problem(path, label, dataset)
    if problem:
        raise UserError(problem)
    return label.astype(np.uint8)


def _problem(path, dataset):
    try:
        read_ground_truth(path, dataset)
    except UserError as exc:
        return str(exc)
    return None


def check_ground_truth(names, image_path, gt_path, workers=8, dataset=VOC12):
    """One UserError, before training, if the ground truth ``gt_path(name)`` of a name is
    missing, not its image's size, unreadable or has values outside 0..C and 255."""
    check_files(names, image_path, {"ground truth": gt_path}, workers, grey=False)
    with ThreadPoolExecutor(workers) as pool:
        problems = [p for p in pool.map(functools.partial(_problem, dataset=dataset),
                                        map(gt_path, names)) if p]
    if problems:
        raise UserError(f"{len(problems)} of {len(names)} ground-truth PNGs of strong_list are "
                        f"unusable: {first_few(problems, SHOWN)}")
