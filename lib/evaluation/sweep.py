"""Seed quality against cam_thresh, from saved class maps (no network): a precision-recall curve.

For each image, the seeds of every threshold are painted by lib.seeds.seeds_from_cams at
feature size, exactly as infer_cam paints them. Zooming a seed to image size with nearest
neighbour sends each image pixel to one feature cell, so the confusion matrix of a
threshold is the per-cell ground-truth histogram summed by the cell's seed label: one small
matrix product per image for all thresholds, the same counts as evaluating the PNGs.
"""
import json
import math
import os

import numpy as np

from lib.dataset.description import VOC12
from lib.dataset.strong import ground_truth_problem
from lib.errors import UserError, first_few
from lib.evaluation.metrics import ConfusionMatrix, fraction
from lib.image import read_label_png, zoom_to
from lib.progress import progress_bar
from lib.seeds.class_maps import list_class_maps, load_class_maps
from lib.seeds.threshold import seeds_from_cams
from lib.workers import chunked, default_workers, imap_in_workers

MAPS_PER_TASK = 16  # class-map records per worker task (each image costs a matrix product)


def parse_thresholds(specs):
    """Sorted unique thresholds from strings: ``start:stop:step`` (stop included), numbers,
    or comma-separated numbers. UserError unless every threshold is in (0, 1)."""
    values = []
    for spec in specs:
        for part in str(spec).replace(",", " ").split():
            try:
                if ":" in part:
                    start, stop, step = (float(x) for x in part.split(":"))
                    if step <= 0:
                        raise ValueError
                    count = math.floor((stop - start) / step + 1e-9) + 1
                    if count < 1:
                        raise UserError(f"threshold range '{part}' is empty: start:stop:step "
                                        f"counts up from start to stop (stop included), and "
                                        f"{start:g} is above {stop:g}")
                    values += [round(start + k * step, 10) for k in range(count)]
                else:
                    values.append(float(part))
            except ValueError:
                raise UserError(f"threshold '{part}': expected a number or start:stop:step "
                                f"with step > 0") from None
    if not values:
        raise UserError("no thresholds given")
    bad = [v for v in values if not 0 < v < 1]
    if bad:
        raise UserError(f"thresholds must be in (0, 1), got {bad[0]}")
    return sorted(set(values))


def cell_index(feature_hw, size):
    """(H, W) int index of the feature cell each image pixel takes under the order-0 zoom,
    counted from 1; 0 marks the pixels scipy fills with its constant 0 (at some sizes the
    last row or column samples just past the edge), which a zoomed seed holds as 0."""
    cells = np.arange(1, feature_hw[0] * feature_hw[1] + 1, dtype=np.int32).reshape(feature_hw)
    return zoom_to(cells, (int(size[0]), int(size[1])), order=0)


def image_confusions(record, gt, thresholds, ignore_conflict=False, dataset=VOC12):
    """(len(thresholds), C + 2, C + 2) int64 confusion matrices C[gt, seed] of one image
    (VOC 22 x 22)."""
    bg = record["bg"]
    classes = dataset.seed_classes
    cells = cell_index(bg.shape, record["size"]).ravel()
    gt = gt.ravel()
    counted = gt < classes
    per_cell = np.bincount(cells[counted] * classes + gt[counted],
                           minlength=(bg.size + 1) * classes)
    per_cell = per_cell.reshape(bg.size + 1, classes)
    masks = np.zeros((len(thresholds), bg.size + 1), np.uint8)  # cell 0: the constant 0
    for k, t in enumerate(thresholds):
        masks[k, 1:] = seeds_from_cams(record["maps"], record["tags"], bg, t, ignore_conflict,
                                       dataset.boat_train_classes).ravel()
    one_hot = (masks[..., None] == np.arange(classes)).astype(np.float64)
    # float64 sums of pixel counts are exact far beyond any image size
    return np.rint(per_cell.T.astype(np.float64) @ one_hot).astype(np.int64)


def _chunk_confusions(task):
    """Worker: the summed confusion matrices of a chunk of names, and the chunk's size."""
    maps_dir, gt_dir, names, thresholds, ignore_conflict, dataset = task
    classes = dataset.seed_classes
    total = np.zeros((len(thresholds), classes, classes), np.int64)
    for name in names:
        record = load_class_maps(os.path.join(maps_dir, name + ".npz"), dataset)
        gt_file = os.path.join(gt_dir, name + ".png")
        if not os.path.isfile(gt_file):
            raise UserError(f"class maps of {name} have no ground truth {gt_file}")
        gt = read_label_png(gt_file)
        problem = ground_truth_problem(gt_file, gt, dataset)
        if problem:
            raise UserError(f"{problem}; is dataset_name (--dataset_name) right?")
        if gt.shape != tuple(record["size"]):
            raise UserError(f"{gt_file}: size {gt.shape[1]}x{gt.shape[0]} differs from the "
                            f"image size in its class maps ({record['size'][1]}x"
                            f"{record['size'][0]})")
        total += image_confusions(record, gt, thresholds, ignore_conflict, dataset)
    return total, len(names)


def sweep_thresholds(maps_dir, gt_dir, thresholds, ignore_conflict=False, names=None,
                     workers=None, progress=True, dataset=VOC12):
    """Seed scores at each threshold, from the class maps in ``maps_dir`` (all, or ``names``)
    of images of ``dataset``.

    Returns a list of {"cam_thresh", "mIoU", "mp", "mr", "matrix"} in threshold order, the
    scores as lib.evaluation.folder.evaluate_folder gives them for the seeds of that threshold.
    """
    thresholds = list(thresholds)
    available = list_class_maps(maps_dir)
    if names is None:
        names = available
    else:
        names = list(dict.fromkeys(names))
        missing = sorted(set(names) - set(available))
        if missing:
            raise UserError(f"{len(missing)} listed images have no class maps in {maps_dir}: "
                            f"{first_few(missing)}")
    if not names:
        raise UserError(f"no class maps found: no *.npz in {maps_dir}")
    workers = default_workers() if workers is None else int(workers)
    tasks = [(maps_dir, gt_dir, chunk, thresholds, ignore_conflict, dataset)
             for chunk in chunked(names, workers, MAPS_PER_TASK)]
    classes = dataset.seed_classes
    total = np.zeros((len(thresholds), classes, classes), np.int64)
    with progress_bar(total=len(names), shown=progress, desc="threshold sweep",
                      unit="img") as bar:
        for matrices, count in imap_in_workers(_chunk_confusions, tasks, workers):
            total += matrices
            bar.update(count)
    points = []
    for threshold, matrix in zip(thresholds, total):
        scores = ConfusionMatrix(classes, dataset).merge(matrix).scores()
        points.append({"cam_thresh": threshold, "mIoU": scores["mIoU"], "mp": scores["mp"],
                       "mr": scores["mr"], "matrix": matrix})
    return points


def format_curve(points, configured=None):
    """A table of threshold, precision, recall and mIoU in percent; the best mIoU and the
    ``configured`` threshold (the config's cam_thresh) marked."""
    best = max(range(len(points)), key=lambda i: np.nan_to_num(points[i]["mIoU"], nan=-1))
    lines = ["cam_thresh  precision  recall    mIoU"]
    for i, p in enumerate(points):
        marks = (["best mIoU"] if i == best else []) + (
            ["configured cam_thresh"] if configured is not None
            and abs(p["cam_thresh"] - configured) < 1e-9 else [])
        lines.append(f"{p['cam_thresh']:10.3f}  {100 * p['mp']:9.2f}  {100 * p['mr']:6.2f}  "
                     f"{100 * p['mIoU']:6.2f}" + (f"  <- {', '.join(marks)}" if marks else ""))
    return "\n".join(lines)


def curve_json_bytes(points):
    """The curve as a JSON list of {"cam_thresh", "mIoU", "mp", "mr"} (fractions in 0..1,
    NaN as null), without the matrices."""
    curve = [{"cam_thresh": p["cam_thresh"], "mIoU": fraction(p["mIoU"]),
              "mp": fraction(p["mp"]), "mr": fraction(p["mr"])} for p in points]
    return (json.dumps(curve, indent=1, allow_nan=False) + "\n").encode()
