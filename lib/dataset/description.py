"""What every stage reads of a dataset, chosen by the config key ``dataset_name`` (recipe 14).

A description holds the class names (background first, then the C foreground classes), the
palette of label pictures, where an image and the ground truth lie, and the two classes of
the seeds' boat/train rule. Everything else follows from C, the number of foreground
classes (VOC 20, COCO 80):

- tags, CAM channels, SGAN's ``fc8``/``fc9`` and the classifier's outputs: classes 1..C;
- segmentation (DeepLab's outputs, the evaluator's segmentation mode): C + 1 classes 0..C;
- seed masks: C + 1 marks "unlabeled", so the evaluator's seed mode counts C + 2 classes and
  averages over 0..C; the seed branch of SGAN ignores index C (class c -> c - 1).

Image paths, ground-truth folders and split lists are the description's too: the stages read
them from here (only the synthetic generators, which write a tree, spell out its folders).

The VOC and COCO literals live in lib/voc.py and lib/coco.py; this module is the one place
that turns them into descriptions, and every stage asks :func:`describe` for its dataset.
"""
import difflib
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lib import coco, voc
from lib.errors import ConfigError

LIST_FOLDER = os.path.join("ImageSets", "Segmentation")  # <split>.txt lists, in every dataset
UNLABELED_NAME = "unlabeled"  # the name of seed value C + 1 (tables, legends)


@dataclass(frozen=True)
class DatasetDescription:
    """One dataset's classes, colours and file layout."""

    name: str
    class_names: tuple  # background, then the C foreground classes in label order
    palette: np.ndarray  # (256, 3) uint8 RGB of label values, 255 the ignore colour
    image_path: Callable  # (dataset_root, NAME) -> the image's path
    segmentation_gt: str  # ground truth of segmentation results, under dataset_root
    seed_gt: str  # ground truth of seeds under dataset_root (the configs' gt_path)
    boat_train: tuple  # the class names of the seeds' boat/train rule (recipe 5 step 4)

    @property
    def num_fg_classes(self):
        """C: the foreground classes 1..C (tags, CAM channels)."""
        return len(self.class_names) - 1

    @property
    def num_classes(self):
        """C + 1: background and the foreground classes (segmentation)."""
        return len(self.class_names)

    @property
    def unlabeled(self):
        """C + 1: a seed pixel that carries no label."""
        return len(self.class_names)

    @property
    def seed_classes(self):
        """C + 2: the classes of the evaluator's seed mode (unlabeled counted, not averaged)."""
        return len(self.class_names) + 1

    @property
    def seed_ignore(self):
        """C: the seed branch's ignore index at feature size (class c is c - 1 there)."""
        return len(self.class_names) - 1

    def class_index(self, class_name):
        """The label value of ``class_name``."""
        return self.class_names.index(class_name)

    @property
    def boat_train_classes(self):
        """The label values of the boat/train rule's classes (VOC 4 and 19, COCO 9 and 7)."""
        return tuple(self.class_index(n) for n in self.boat_train)

    def image_relative_path(self, name):
        """The path of image ``name`` relative to the dataset root (id lists, messages)."""
        return self.image_path("", name)


def list_path(root, split):
    """``<root>/ImageSets/Segmentation/<split>.txt``: the names of a split, in every dataset."""
    return os.path.join(root, LIST_FOLDER, split + ".txt")


VOC12 = DatasetDescription("voc12", voc.VOC_CLASSES, voc.VOC_PALETTE, voc.image_path,
                           voc.SEGMENTATION_GT, voc.SEED_GT, ("boat", "train"))
COCO14 = DatasetDescription("coco14", coco.COCO_CLASSES, coco.COCO_PALETTE, coco.image_path,
                            coco.LABEL_FOLDER + "/", coco.LABEL_FOLDER + "/", ("boat", "train"))
# dataset_name -> description; voc12_sgan is the published configs' name for VOC.
DATASETS = {"voc12_sgan": VOC12, "voc12": VOC12, "coco14": COCO14}


def dataset_description(name):
    """The description of ``dataset_name`` ``name``; a one-line error with the nearest name."""
    if name in DATASETS:
        return DATASETS[name]
    nearest = difflib.get_close_matches(str(name), DATASETS, n=1, cutoff=0.5)
    hint = f"did you mean '{nearest[0]}'? " if nearest else ""
    raise ConfigError(f"config key 'dataset_name': unknown dataset {name!r} ({hint}one of "
                      f"{', '.join(DATASETS)})")


def describe(cfg):
    """The description of a configuration's ``dataset_name``."""
    return dataset_description(cfg.dataset_name)
