"""Semi-supervised SGAN (SPEC 12): the names of ``strong_list`` and their ground truth.

The names of the list file ``strong_list`` (resolved under ``dataset_root``, like
``cue_file``) have full masks, ``<gt_path>/NAME.png`` (0..20, 255 ignore): stage 2's seed
branch and stage 3's network train on them in place of seeds. Both stages read the list and
check the masks here, before training.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from lib.config import ConfigError
from lib.dataset.check import SHOWN, check_files
from lib.errors import UserError, first_few
from lib.files import read_names
from lib.image import read_label_png
from lib.paths import dataset_path
from lib.voc import IGNORE, NUM_CLASSES


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


def invalid_ground_truth(label):
    """The sorted values of a ground-truth ``label`` outside 0..20 and 255 (ignore)."""
    return np.unique(label[(label >= NUM_CLASSES) & (label != IGNORE)]).tolist()


def read_ground_truth(path):
    """The uint8 ground truth at ``path`` (palette or grey PNG: label indices); UserError naming
    the file if it is missing, unreadable or has values outside 0..20 and 255."""
    label = read_label_png(path)
    bad = invalid_ground_truth(label)
    if bad:
        raise UserError(f"{path}: label values {first_few(bad)} outside 0..20 and 255")
    return label.astype(np.uint8)


def _problem(path):
    try:
        read_ground_truth(path)
    except UserError as exc:
        return str(exc)
    return None


def check_ground_truth(names, image_path, gt_path, workers=8):
    """One UserError, before training, if the ground truth ``gt_path(name)`` of a name is
    missing, not its image's size, unreadable or has values outside 0..20 and 255."""
    check_files(names, image_path, {"ground truth": gt_path}, workers, grey=False)
    with ThreadPoolExecutor(workers) as pool:
        problems = [p for p in pool.map(_problem, map(gt_path, names)) if p]
    if problems:
        raise UserError(f"{len(problems)} of {len(names)} ground-truth PNGs of strong_list are "
                        f"unusable: {first_few(problems, SHOWN)}")
