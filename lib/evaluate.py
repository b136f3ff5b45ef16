"""Evaluate a folder of label PNGs against ground truth (SPEC section 7).

Predictions ``res_path/NAME.png`` (8-bit grey, raw class values) are matched by name with
ground truth ``gt_path/NAME.png`` (palette or grey PNG; label indices, 255 = ignore). Decoding
dominates the cost, so chunks of names are decoded in worker processes, each returning a partial
confusion matrix; the int64 partial matrices sum to the same result in any order. Grey
predictions are decoded by OpenCV, ground truth by PIL (palette PNGs as indices).
"""
import json
import math
import os
import signal
from multiprocessing import Pool

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from lib.dataset.names import file_names, first_few
from lib.errors import UserError
from lib.metrics import ConfusionMatrix, class_names

PNG = ".png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_GREY_DEPTHS = (b"\x08\x00", b"\x10\x00")  # IHDR bit depth 8 or 16, colour type 0 (grey)
CHUNKS_PER_WORKER = 8
MAX_CHUNK = 32


def default_workers():
    return min(8, os.cpu_count() or 1)


def _one_line(text):
    return " ".join(str(text).split())


def read_label_png(path):
    """Read a PNG as a 2-D integer label map (palette PNGs give indices); UserError if not."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            labels = np.asarray(image)
    except Exception as exc:  # any decoder failure means the file is unusable
        raise UserError(f"cannot read {path}: {_one_line(exc) or type(exc).__name__}") from None
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{path}: expected a single-channel label PNG, got mode {mode}")
    return labels


def read_prediction_png(path):
    """:func:`read_label_png` for predictions, faster for what the seed writer makes: an
    8- or 16-bit grey PNG is decoded by OpenCV (the same values), anything else by PIL."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return read_label_png(path)  # its one-line error
    if data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and data[24:26] in PNG_GREY_DEPTHS:
        labels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if labels is not None and labels.ndim == 2:
            return labels
    return read_label_png(path)


def _confusion_of_chunk(task):
    """Worker: the int64 confusion matrix of one chunk of names and the chunk's size."""
    res_path, gt_path, num_classes, names = task
    confusion = ConfusionMatrix(num_classes)
    for name in names:
        pred_file = os.path.join(res_path, name + PNG)
        gt_file = os.path.join(gt_path, name + PNG)
        pred = read_prediction_png(pred_file)
        gt = read_label_png(gt_file)
        if pred.shape != gt.shape:
            raise UserError(f"{pred_file}: size {pred.shape[1]}x{pred.shape[0]} differs from "
                            f"ground truth {gt_file} ({gt.shape[1]}x{gt.shape[0]})")
        high = pred.max(initial=0)
        if high >= num_classes or pred.min(initial=0) < 0:
            bad = high if high >= num_classes else pred.min()
            raise UserError(f"{pred_file}: prediction value {int(bad)} is not a class "
                            f"(num_classes={num_classes}, valid 0..{num_classes - 1})")
        confusion.update(gt, pred)
    return confusion.matrix, len(names)


def _ignore_sigint():
    """Workers leave Ctrl-C to the parent, which stops the pool (no worker tracebacks)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _check_names(res_path, gt_path, names):
    """The names to evaluate; UserError for missing predictions or ground truth."""
    available = file_names(res_path, what="prediction")
    if names is None:
        names = available
        if not names:
            raise UserError(f"no predictions found: no *.png in {res_path}")
    else:
        names = list(dict.fromkeys(names))
        if not names:
            raise UserError("the list of names to evaluate is empty")
        present = set(available)
        missing = [n for n in names if n not in present]
        if missing:
            raise UserError(f"{len(missing)} of {len(names)} listed images have no prediction "
                            f"in {res_path}: {first_few(missing)}")
    gt_names = set(file_names(gt_path, what="ground-truth"))
    no_gt = [n for n in names if n not in gt_names]
    if len(no_gt) == 1:
        raise UserError(f"prediction {os.path.join(res_path, no_gt[0] + PNG)} has no ground "
                        f"truth {os.path.join(gt_path, no_gt[0] + PNG)}")
    if no_gt:
        raise UserError(f"{len(no_gt)} predictions have no ground truth in {gt_path}: "
                        f"{first_few([n + PNG for n in no_gt])}")
    return names


def evaluate_folder(res_path, gt_path, num_classes, names=None, workers=None, progress=True):
    """Evaluate ``res_path/*.png`` (or exactly ``names``, given without extension) against
    ``gt_path``.

    ``workers``: decoding processes (default min(8, cpu count); 0 or 1 = in this process).
    Returns {"num_classes", "num_images", "class_names", "matrix" (int64 C[gt, pred]),
    "iou", "precision", "recall" (float64 arrays over all classes), "mIoU", "mp", "mr"
    (means over classes 0..20)}. Raises UserError naming the file on any bad input.
    """
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise UserError(f"workers must be >= 0, got {workers}")
    names = _check_names(res_path, gt_path, names)
    chunk = max(1, min(MAX_CHUNK, math.ceil(len(names) / (max(workers, 1) * CHUNKS_PER_WORKER))))
    tasks = [(res_path, gt_path, num_classes, names[i:i + chunk])
             for i in range(0, len(names), chunk)]
    workers = min(workers, len(tasks))
    confusion = ConfusionMatrix(num_classes)
    with tqdm(total=len(names), desc="evaluating", unit="img",
              disable=None if progress else True) as bar:
        if workers <= 1:
            results = map(_confusion_of_chunk, tasks)
            _accumulate(confusion, results, bar)
        else:
            with Pool(workers, initializer=_ignore_sigint) as pool:
                _accumulate(confusion, pool.imap_unordered(_confusion_of_chunk, tasks), bar)
    return {"num_classes": num_classes, "num_images": len(names),
            "class_names": class_names(num_classes), "matrix": confusion.matrix,
            "mean_classes": confusion.mean_classes, **confusion.scores()}


def _accumulate(confusion, results, bar):
    for matrix, count in results:
        confusion += matrix
        bar.update(count)


def _percent(value):
    return "   n/a" if math.isnan(value) else f"{100 * value:6.2f}"


def format_table(result):
    """The familiar per-class table (IoU / precision / recall in percent) and the means."""
    k = result["mean_classes"]
    width = max(len(name) for name in result["class_names"][:k])
    lines = [f"{result['num_images']} images, {result['num_classes']} classes",
             f"{'class':<{width}}     IoU  precision  recall"]
    for c, name in enumerate(result["class_names"][:k]):
        lines.append(f"{name:<{width}}  {_percent(result['iou'][c])}     "
                     f"{_percent(result['precision'][c])}  {_percent(result['recall'][c])}")
    if result["num_classes"] > k:
        matrix = result["matrix"]
        unlabeled = matrix[:k, k:].sum() / max(matrix[:k].sum(), 1)
        lines.append(f"({_percent(unlabeled).strip()}% of labelled pixels predicted "
                     f"{', '.join(result['class_names'][k:])})")
    lines += [f"mIoU: {_percent(result['mIoU']).strip()}",
              f"mp:   {_percent(result['mp']).strip()}",
              f"mr:   {_percent(result['mr']).strip()}"]
    return "\n".join(lines)


def _fraction(value):
    value = float(value)
    return None if math.isnan(value) else value


def result_to_json(result):
    """The SPEC 9 JSON object: {"mIoU", "mp", "mr", "per_class": {name: {"iou", "precision",
    "recall"}}} over classes 0..20, fractions in 0..1, NaN (absent class) as null."""
    k = result["mean_classes"]
    per_class = {name: {"iou": _fraction(result["iou"][c]),
                        "precision": _fraction(result["precision"][c]),
                        "recall": _fraction(result["recall"][c])}
                 for c, name in enumerate(result["class_names"][:k])}
    return {"mIoU": _fraction(result["mIoU"]), "mp": _fraction(result["mp"]),
            "mr": _fraction(result["mr"]), "per_class": per_class}


def result_json_bytes(result):
    """``result_to_json`` serialised (strict JSON: no NaN tokens)."""
    return (json.dumps(result_to_json(result), indent=1, allow_nan=False) + "\n").encode()
