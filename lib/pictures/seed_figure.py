"""Pictures of seeds: one strip per image for infer_cam, and comparison grids of seed folders.

The strip is the seeds blended over the image in the VOC palette, then one heat map per tag
(the class probability P_c of SPEC section 6 over the image), side by side. The grid puts
chosen images in rows: the image, each seed folder, the ground truth, with a class legend.
"""
import os

import numpy as np

from lib.errors import UserError
from lib.image import read_image, read_label_png
from lib.pictures.panels import Panel, heatmap, overlay, save_seed_grid
from lib.seeds.crf import class_probabilities
from lib.seeds.export import seed_names

GAP = 4  # white pixels between the pictures of a strip
PNG = ".png"


def seed_picture(image_rgb, seed, maps, tags):
    """H x (n W + (n - 1) GAP) x 3 uint8 RGB: seed overlay, then a heat map per tag (sorted).

    maps: (20, h, w) class maps M; seed: H x W labels (0, 1..20, 21 unlabeled).
    """
    tags = np.unique(np.asarray(tags, dtype=np.int64))
    pictures = [overlay(image_rgb, seed)]
    if tags.size:
        probs = class_probabilities(maps, tags, image_rgb.shape[:2])
        pictures += [heatmap(p, image_rgb, vmin=0.0, vmax=1.0) for p in probs]
    gap = np.full((image_rgb.shape[0], GAP, 3), 255, dtype=np.uint8)
    strip = [pictures[0]]
    for picture in pictures[1:]:
        strip += [gap, picture]
    return np.concatenate(strip, axis=1)


def first_names(seed_dirs, count):
    """The first ``count`` names (sorted) that every seed folder has."""
    if count < 1:
        raise UserError(f"the number of images must be >= 1, got {count}")
    common = set(seed_names(seed_dirs[0]))
    for folder in seed_dirs[1:]:
        common &= set(seed_names(folder))
    if not common:
        raise UserError(f"no image has seeds in all of: {', '.join(seed_dirs)}")
    return sorted(common)[:count]


def _read_labels(path, size):
    if not os.path.isfile(path):
        raise UserError(f"file not found: {path}")
    labels = read_label_png(path)
    if labels.shape != size:
        raise UserError(f"{path}: size {labels.shape[1]}x{labels.shape[0]} differs from the "
                        f"image ({size[1]}x{size[0]})")
    return labels


def save_seed_figure(names, seed_dirs, dataset_root, path, titles=None,
                     gt_subdir="SegmentationClassAug"):
    """Write a grid PNG: per name a row image | seeds of each folder | ground truth.

    ``titles`` name the seed columns (default: the folders' base names). Returns the legend
    entries as (value, name) pairs. UserError for a missing or mis-sized file.
    """
    if not names:
        raise UserError("no images to draw: give names, a list file or a count")
    titles = list(titles) if titles else [os.path.basename(os.path.normpath(d)) for d in seed_dirs]
    if len(titles) != len(seed_dirs):
        raise UserError(f"{len(titles)} titles for {len(seed_dirs)} seed folders")
    rows = []
    for name in names:
        image_path = os.path.join(dataset_root, "JPEGImages", name + ".jpg")
        if not os.path.isfile(image_path):
            raise UserError(f"image not found: {image_path}")
        image = read_image(image_path)[:, :, ::-1].copy()
        size = image.shape[:2]
        row = [Panel("rgb", image)]
        row += [Panel("labels", _read_labels(os.path.join(d, name + PNG), size))
                for d in seed_dirs]
        row.append(Panel("labels", _read_labels(os.path.join(dataset_root, gt_subdir,
                                                             name + PNG), size)))
        rows.append(row)
    return save_seed_grid(rows, path, column_titles=["image", *titles, "ground truth"])
