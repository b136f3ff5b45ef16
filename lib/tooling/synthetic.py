"""A small synthetic dataset in the VOC2012 layout of recipe 1, for tests and demos.

Scenes come from lib.tooling.synthetic_scene. Image ``i`` is drawn from
``numpy.random.default_rng([seed, i])``, so it depends only on the seed, its index and the
class list, never on how many images are generated.

Every 5th image is held out (``ImageSets/Segmentation/val.txt``): it has its image, saliency
map and ground truth, but the training inputs, ``im_tags.pkl`` / ``im_tags.json`` (every
stage's ``cue_file``), ``train_aug.txt`` and the initial seeds, cover the training images
(``train.txt``) only, as VOC's do train_aug, so that a run on the tree as it is never trains
on the held-out images.
"""
import os

import numpy as np

from lib.dataset.tags import save_tags
from lib.files import write_names
from lib.image import write_jpg, write_palette_png, write_png
from lib.tooling.synthetic_scene import generate_sample
from lib.voc import IGNORE, NUM_FG_CLASSES

NAME_PREFIX = "2099_"


def _check_subdir(value, option):
    if not value or os.path.isabs(value) or ".." in value.replace("\\", "/").split("/"):
        raise ValueError(f"{option} must be a relative folder name, got {value!r}")


def check_arguments(num_images, min_size, max_size, classes, sal_subdir, seed_subdir,
                    num_classes=NUM_FG_CLASSES):
    """ValueError unless the generator's arguments make sense (``classes`` in 1..num_classes)."""
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}")
    if min_size < 24:
        raise ValueError(f"min_size must be at least 24 pixels, got {min_size}")
    if max_size <= min_size:
        raise ValueError(f"max_size ({max_size}) must be larger than min_size ({min_size}) "
                         "so that images can be non-square")
    if not classes:
        raise ValueError("classes must name at least one class")
    bad = [c for c in classes if not 1 <= c <= num_classes]
    if bad:
        raise ValueError(f"classes must be in 1..{num_classes}, got {bad}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must not repeat, got {list(classes)}")
    _check_subdir(sal_subdir, "sal_subdir")
    _check_subdir(seed_subdir, "seed_subdir")


def split_train_val(names):
    """Every 5th image to val, the rest to train; with 2-4 images the last one is val."""
    val = [n for i, n in enumerate(names) if i % 5 == 4]
    if not val and len(names) > 1:
        val = names[-1:]
    val_set = set(val)
    return [n for n in names if n not in val_set], val


def draw_image_size(rng, min_size, max_size):
    """(height, width), each uniform in [min_size, max_size] but never equal to each other."""
    height = int(rng.integers(min_size, max_size + 1))
    width = int(rng.integers(min_size, max_size))
    if width >= height:  # width uniform over the range minus ``height``
        width += 1
    return height, width


def image_name(index):
    """The file stem of image ``index``: ``2099_000000``, ``2099_000001``, ..."""
    return f"{NAME_PREFIX}{index:06d}"


def generate_dataset(root, num_images=40, min_size=64, max_size=128, seed=0, classes=None,
                     sal_subdir="sal_snet", seed_subdir="base_30_bg"):
    """Write a synthetic VOC2012-format tree under ``root``; return the sorted names of all
    its images (training and held-out; the tags, train_aug.txt and the initial seeds cover the
    training ones).

    ``classes`` (default: all 20) limits which classes appear. Image sides are drawn
    independently in ``[min_size, max_size]`` and never equal. Raises ``ValueError`` for
    bad arguments. Every file is written atomically.
    """
    classes = list(range(1, NUM_FG_CLASSES + 1)) if classes is None else [int(c) for c in classes]
    check_arguments(num_images, min_size, max_size, classes, sal_subdir, seed_subdir)
    root = os.fspath(root)
    folders = {
        "image": os.path.join(root, "JPEGImages"),
        "sal": os.path.join(root, "sal", sal_subdir),
        "seed": os.path.join(root, "ini_seed", seed_subdir),
        "gt": os.path.join(root, "SegmentationClassAug"),
        "gt_val": os.path.join(root, "SegmentationClass"),
    }
    names = [image_name(index) for index in range(num_images)]
    train, val = split_train_val(names)
    training = set(train)
    tags = {}
    for index, name in enumerate(names):
        rng = np.random.default_rng([seed, index])
        height, width = draw_image_size(rng, min_size, max_size)
        sample = generate_sample(rng, height, width, classes)
        write_jpg(os.path.join(folders["image"], name + ".jpg"), sample["image"], quality=95)
        write_png(os.path.join(folders["sal"], name + ".png"), sample["sal"])
        write_palette_png(os.path.join(folders["gt"], name + ".png"), sample["gt"])
        write_palette_png(os.path.join(folders["gt_val"], name + ".png"), sample["gt"])
        if name in training:
            write_png(os.path.join(folders["seed"], name + ".png"), sample["seed"])
            present = np.unique(sample["gt"])
            tags[name] = present[(present != 0) & (present != IGNORE)].astype(np.int64)
    save_tags(tags, os.path.join(root, "im_tags.pkl"))
    save_tags(tags, os.path.join(root, "im_tags.json"))
    lists = os.path.join(root, "ImageSets", "Segmentation")
    write_names(os.path.join(lists, "train_aug.txt"), train)
    write_names(os.path.join(lists, "train.txt"), train)
    write_names(os.path.join(lists, "val.txt"), val)
    return sorted(names)
