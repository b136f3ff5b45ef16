"""Pictures of seeds: one strip per image for infer_cam, and comparison grids of seed folders.

The strip shows, side by side and titled, the image, its seeds in the dataset's palette and one
heat map per tag (the class probability P_c of recipe 6 over the image), with the heat maps'
colour bar and a legend of the seed's labels; drawn with OpenCV (one strip per image, in the
writer's workers). The grid puts chosen images in rows: the image, each seed folder, the
ground truth, with a class legend. Names, colours and image paths are those of the dataset
(lib.dataset.description; VOC's by default).
"""
import math
import os

import cv2
import numpy as np

from lib.dataset.description import VOC12
from lib.errors import UserError
from lib.files import PNG
from lib.image import read_image, read_label_png
from lib.pictures.panels import Panel, colorize_labels, heatmap, label_name, save_seed_grid
from lib.seeds.crf import class_probabilities
from lib.seeds.export import seed_names

GAP = 6  # pixels of background around and between the panels of a strip
BACKGROUND = (64, 64, 64)  # dark grey: the white of "unlabeled" and the black of background show
TEXT = (255, 255, 255)
TITLE_HEIGHT = 24  # the band above the panels that holds their titles
MIN_PANEL_HEIGHT = 160  # small images are enlarged (whole pixels) so that titles fit
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.5
BAR_WIDTH = 14  # the colour bar of the heat maps, with its tick labels beside it
BAR_TICKS = (1.0, 0.5, 0.0)
SWATCH = 12  # the legend's colour squares


def strip_panels(image_rgb, seed, maps, tags, dataset=VOC12):
    """(titles, panels) of an image's strip: the image, its seeds in the palette of
    ``dataset`` ("unlabeled" white) and, per tag (sorted), the class probability P_c of
    recipe 6 over the image as a heat map; panels H x W x 3 uint8 RGB at the image's size.

    maps: (C, h, w) class maps M; seed: H x W labels (0, 1..C, C + 1 unlabeled).
    """
    tags = np.unique(np.asarray(tags, dtype=np.int64))
    titles, panels = ["image", "seeds"], [image_rgb, colorize_labels(seed, dataset=dataset)]
    if tags.size:
        probs = class_probabilities(maps, tags, image_rgb.shape[:2])
        titles += [f"P({dataset.class_names[t]})" for t in tags]
        panels += [heatmap(p, image_rgb, vmin=0.0, vmax=1.0) for p in probs]
    return titles, panels


def enlargement(height):
    """The whole-pixel factor that brings a panel ``height`` to MIN_PANEL_HEIGHT or more."""
    return max(1, math.ceil(MIN_PANEL_HEIGHT / height))


def seed_picture(image_rgb, seed, maps, tags, dataset=VOC12):
    """The strip of one image as H' x W' x 3 uint8 RGB on a dark background: the panels of
    :func:`strip_panels` side by side (enlarged by :func:`enlargement`, starting at
    (TITLE_HEIGHT, GAP) with GAP between them), a title above each, the heat maps' colour bar
    on the right, and a legend of the seed's labels below (names and colours of
    ``dataset``)."""
    titles, panels = strip_panels(image_rgb, seed, maps, tags, dataset)
    factor = enlargement(image_rgb.shape[0])
    panels = [np.repeat(np.repeat(p, factor, axis=0), factor, axis=1) for p in panels]
    height, width = panels[0].shape[:2]
    bar = _colour_bar(height) if len(panels) > 2 else np.zeros((height, 0, 3), np.uint8)
    strip_width = GAP + len(panels) * (width + GAP) + bar.shape[1]
    entries = [(label_name(v, dataset), _label_colour(v, dataset))
               for v in np.unique(seed).tolist() if v <= dataset.unlabeled]
    legend = _legend(entries, strip_width)
    picture = np.empty((TITLE_HEIGHT + height + legend.shape[0], strip_width, 3), np.uint8)
    picture[:] = BACKGROUND
    for k, (title, panel) in enumerate(zip(titles, panels)):
        x = GAP + k * (width + GAP)
        picture[TITLE_HEIGHT:TITLE_HEIGHT + height, x:x + width] = panel
        _text(picture, title, x, TITLE_HEIGHT - 7, width)
    if bar.shape[1]:
        picture[TITLE_HEIGHT:TITLE_HEIGHT + height, strip_width - bar.shape[1]:] = bar
        _text(picture, "P", strip_width - bar.shape[1], TITLE_HEIGHT - 7, bar.shape[1])
    picture[TITLE_HEIGHT + height:] = legend
    return picture


def _label_colour(value, dataset):
    return tuple(int(c) for c in colorize_labels(np.array([[value]]), dataset=dataset)[0, 0])


def _text(picture, text, x, baseline, width):
    """Draw ``text`` at (x, baseline), its font shrunk (and the text cut) to fit ``width``."""
    scale = FONT_SCALE
    while cv2.getTextSize(text, FONT, scale, 1)[0][0] > width and scale > 0.3:
        scale *= 0.9
    while len(text) > 1 and cv2.getTextSize(text, FONT, scale, 1)[0][0] > width:
        text = text[:-2] + "."
    cv2.putText(picture, text, (x, baseline), FONT, scale, TEXT, 1, cv2.LINE_AA)


def _colour_bar(height):
    """The heat maps' scale: jet from P = 1 (top) to 0 (bottom) with tick labels."""
    label_width = cv2.getTextSize("0.5", FONT, 0.4, 1)[0][0]
    area = np.empty((height, BAR_WIDTH + label_width + 2 * GAP, 3), np.uint8)
    area[:] = BACKGROUND
    ramp = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None].repeat(BAR_WIDTH, axis=1)
    area[:, :BAR_WIDTH] = heatmap(ramp, vmin=0.0, vmax=1.0)
    for value in BAR_TICKS:
        y = int(round((1 - value) * (height - 1)))
        baseline = min(max(y + 4, 10), height - 2)
        cv2.putText(area, f"{value:g}" if value in (0.0, 1.0) else f"{value}",
                    (BAR_WIDTH + 3, baseline), FONT, 0.4, TEXT, 1, cv2.LINE_AA)
    return area


def _legend(entries, width):
    """Rows of (colour square, name) for the seed's labels, wrapped to ``width``."""
    rows, row, used = [], [], GAP
    for name, colour in entries:
        size = SWATCH + 4 + cv2.getTextSize(name, FONT, 0.45, 1)[0][0] + 2 * GAP
        if row and used + size > width:
            rows.append(row)
            row, used = [], GAP
        row.append((name, colour, used))
        used += size
    rows += [row] if row else []
    legend = np.empty((len(rows) * (SWATCH + 2 * GAP) + GAP, width, 3), np.uint8)
    legend[:] = BACKGROUND
    for r, row in enumerate(rows):
        y = GAP + r * (SWATCH + 2 * GAP)
        for name, colour, x in row:
            cv2.rectangle(legend, (x, y), (x + SWATCH - 1, y + SWATCH - 1), colour, cv2.FILLED)
            cv2.rectangle(legend, (x, y), (x + SWATCH - 1, y + SWATCH - 1), (160, 160, 160), 1)
            cv2.putText(legend, name, (x + SWATCH + 4, y + SWATCH - 1), FONT, 0.45, TEXT, 1,
                        cv2.LINE_AA)
    return legend


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


def save_seed_figure(names, seed_dirs, dataset_root, path, titles=None, gt_subdir=None,
                     dataset=VOC12):
    """Write a grid PNG: per name a row image | seeds of each folder | ground truth, the
    images, ground truth (``gt_subdir``, default the seeds' ground truth of ``dataset``),
    names and colours of ``dataset``.

    ``titles`` name the seed columns (default: the folders' base names). Returns the legend
    entries as (value, name) pairs. UserError for a missing or mis-sized file.
    """
    if not names:
        raise UserError("no images to draw: give names, a list file or a count")
    titles = list(titles) if titles else [os.path.basename(os.path.normpath(d)) for d in seed_dirs]
    if len(titles) != len(seed_dirs):
        raise UserError(f"{len(titles)} titles for {len(seed_dirs)} seed folders")
    gt_subdir = gt_subdir or dataset.seed_gt
    rows = []
    for name in names:
        image_path = dataset.image_path(dataset_root, name)
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
    return save_seed_grid(rows, path, column_titles=["image", *titles, "ground truth"],
                          dataset=dataset)
