"""MS-COCO 2014 constants and its on-disk format, defined once (as lib/voc.py is VOC's).

Classes: 0 background, 1..80 COCO's 80 categories in increasing category id (ids 1..90 skip
ten numbers, so id 13 "stop sign" is class 12 and id 90 "toothbrush" class 80), 81
"unlabeled" in seed masks, 255 "ignore" in ground truth. Image names follow COCO 2014:
``COCO_<folder>_<12-digit id>``, the image being ``<folder>/NAME.jpg`` under the dataset root.
"""
import os
import re

import numpy as np

from lib.voc import VOC_PALETTE

# COCO 2014's categories: (category id, name), in increasing id, as its instances files list them.
COCO_CATEGORIES = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"),
    (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"),
    (13, "stop sign"), (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"),
    (18, "dog"), (19, "horse"), (20, "sheep"), (21, "cow"), (22, "elephant"), (23, "bear"),
    (24, "zebra"), (25, "giraffe"), (27, "backpack"), (28, "umbrella"), (31, "handbag"),
    (32, "tie"), (33, "suitcase"), (34, "frisbee"), (35, "skis"), (36, "snowboard"),
    (37, "sports ball"), (38, "kite"), (39, "baseball bat"), (40, "baseball glove"),
    (41, "skateboard"), (42, "surfboard"), (43, "tennis racket"), (44, "bottle"),
    (46, "wine glass"), (47, "cup"), (48, "fork"), (49, "knife"), (50, "spoon"), (51, "bowl"),
    (52, "banana"), (53, "apple"), (54, "sandwich"), (55, "orange"), (56, "broccoli"),
    (57, "carrot"), (58, "hot dog"), (59, "pizza"), (60, "donut"), (61, "cake"), (62, "chair"),
    (63, "couch"), (64, "potted plant"), (65, "bed"), (67, "dining table"), (70, "toilet"),
    (72, "tv"), (73, "laptop"), (74, "mouse"), (75, "remote"), (76, "keyboard"),
    (77, "cell phone"), (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"),
    (82, "refrigerator"), (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"),
    (88, "teddy bear"), (89, "hair drier"), (90, "toothbrush"),
)
COCO_CLASSES = ("background",) + tuple(name for _, name in COCO_CATEGORIES)
NUM_FG_CLASSES = len(COCO_CATEGORIES)  # 80: the image-level tags, CAM channels
NUM_CLASSES = NUM_FG_CLASSES + 1       # background + 80: segmentation
SEED_CLASSES = NUM_FG_CLASSES + 2      # background + 80 + unlabeled: seed masks
UNLABELED = NUM_FG_CLASSES + 1         # a seed pixel that carries no label

SPLITS = ("train2014", "val2014")      # image folders, and the middle field of their names
LIST_NAMES = {"train2014": "train", "val2014": "val"}            # ImageSets/Segmentation/<list>.txt
TAGS_FILES = {"train2014": "im_tags.pkl", "val2014": "im_tags_val.pkl"}
LABEL_FOLDER = "SegmentationClass"     # the label PNGs (gt_path's default for COCO)
_NAME = re.compile(r"COCO_([A-Za-z0-9]+)_(\d{12})")


def annotation_file(split):
    """COCO's instances file of ``split``, relative to the dataset root."""
    return os.path.join("annotations", f"instances_{split}.json")


def image_name(split, image_id):
    """``COCO_train2014_000000000009`` for image id 9 of train2014."""
    return f"COCO_{split}_{int(image_id):012d}"


def is_image_name(name):
    """True if ``name`` follows COCO 2014's rule ``COCO_<folder>_<12 digits>``."""
    return _NAME.fullmatch(name) is not None


def image_folder(name):
    """The folder of image ``name``: the middle field of its name (``train2014``)."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"not a COCO image name (COCO_<folder>_<12 digits>): {name!r}")
    return match.group(1)


def image_path(root, name):
    """``root/<folder>/NAME.jpg``, the folder taken from the name."""
    return os.path.join(root, image_folder(name), name + ".jpg")


def category_classes(categories):
    """``{category id: class}``: a json's ``categories`` ids in increasing order -> 1, 2, ..."""
    return {cid: index + 1 for index, cid in enumerate(sorted(c["id"] for c in categories))}


def class_names(categories):
    """``("background", names of a json's ``categories`` in increasing id ...)``."""
    return ("background",) + tuple(c["name"] for c in sorted(categories, key=lambda c: c["id"]))


def _srgb_to_lab(rgb):
    """CIELAB (D65) of sRGB colours, an (n, 3) float array of 0..255."""
    c = rgb / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                       [0.0193, 0.1192, 0.9505]])
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def _coco_palette():
    """256 RGB colours: VOC's colour map (0 black background, 255 the ignore colour), with
    1..80 replaced by colours far apart in CIELAB. VOC's own entries 1..81 are not: its
    colour 70 differs from 6 by 2.6 CIELAB units (invisible). Each class colour is the grid
    colour (steps of 17 per channel) farthest from the background, the ignore colour, white
    (unlabeled seeds in pictures) and the classes before it; nearest pair about 22 units."""
    levels = np.arange(0, 256, 17, dtype=np.float64)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    lab = _srgb_to_lab(grid)
    kept = np.array([VOC_PALETTE[0], VOC_PALETTE[255], (255, 255, 255)], dtype=np.float64)
    nearest = np.linalg.norm(lab[:, None] - _srgb_to_lab(kept)[None], axis=-1).min(axis=1)
    palette = VOC_PALETTE.copy()
    for cls in range(1, NUM_FG_CLASSES + 1):
        pick = int(np.argmax(np.round(nearest, 6)))  # rounded: ties break the same everywhere
        palette[cls] = grid[pick]
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[pick], axis=1))
    palette.setflags(write=False)
    return palette


COCO_PALETTE = _coco_palette()  # (256, 3) uint8 RGB
