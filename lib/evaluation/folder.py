"""Evaluate a folder of label PNGs against ground truth (recipe 7).

Predictions ``res_path/NAME.png`` (8-bit grey, raw class values) are matched by name with
ground truth ``gt_path/NAME.png`` (palette or grey PNG; label indices, 255 = ignore). Decoding
dominates the cost, so chunks of names are decoded in worker processes, each returning a partial
confusion matrix; the int64 partial matrices sum to the same result in any order. Grey
predictions are decoded by OpenCV, ground truth by PIL (palette PNGs as indices).
"""
import json
import math
import os

from lib.dataset.description import VOC12
from lib.dataset.strong import ground_truth_problem
from lib.dataset.tags import load_tags
from lib.errors import UserError, first_few
from lib.evaluation.metrics import (
    ConfusionMatrix,
    class_names,
    fraction,
    prediction_out_of_range,
)
from lib.files import PNG, file_names, missing_files, read_names
from lib.image import read_label_png, read_prediction_png
from lib.progress import progress_bar
from lib.workers import chunked, default_workers, imap_in_workers

PAIRS_PER_TASK = 32  # (prediction, ground truth) PNG pairs per worker task


def expected_names(list_path=None, tags_file=None, folder=None, dataset=VOC12):
    """The names a job must cover: a list file's, else a tags file's (of ``dataset``), else a
    folder's PNGs."""
    if list_path:
        return read_names(list_path)
    if tags_file:
        return sorted(load_tags(tags_file, dataset))
    return file_names(folder)


def evaluation_names(res_path, gt_path, list_path=None, tags_file=None, strict=True,
                     dataset=VOC12):
    """(the names to evaluate, the number of ground-truth files left unscored).

    With a list file or a tags file, their names; ``strict`` requires a prediction for each,
    otherwise those without one are left out. With neither, the predictions there are, as
    the published evaluator scores them (each must have ground truth): on VOC the ground-truth
    folder holds 12,031 masks and the seeds are 10,582.
    """
    gt_names = file_names(gt_path, what="ground-truth")
    if list_path or tags_file:
        names = expected_names(list_path, tags_file, dataset=dataset)
        absent = missing_files(res_path, names)
        if absent and len(absent) == len(names):
            source = list_path or tags_file
            raise UserError(f"no predictions in {res_path} for the {len(names)} names of "
                            f"{source}" + ("" if os.path.isdir(res_path) else
                                           " (no such folder)")
                            + ": is it the folder inference wrote?")
        if absent and strict:
            raise UserError(f"{len(absent)} of {len(names)} predictions missing in {res_path}: "
                            f"{first_few(absent)} (--no-strict evaluates those there are)")
        absent = set(absent)
        names = [n for n in names if n + PNG not in absent]
    else:
        names = file_names(res_path, what="prediction")
        if not names:
            raise UserError(f"no predictions found: no *{PNG} in {res_path}")
        orphans = missing_files(gt_path, names)
        if orphans:
            raise UserError(f"{len(orphans)} predictions have no ground truth in {gt_path}: "
                            f"{first_few(orphans)}")
    return names, len(set(gt_names) - set(names))


def _confusion_of_chunk(task):
    """Worker: the int64 confusion matrix of one chunk of names and the chunk's size."""
    res_path, gt_path, num_classes, names, dataset = task
    confusion = ConfusionMatrix(num_classes)
    for name in names:
        pred_file = os.path.join(res_path, name + PNG)
        gt_file = os.path.join(gt_path, name + PNG)
        pred = read_prediction_png(pred_file)
        gt = read_label_png(gt_file)
        if pred.shape != gt.shape:
            raise UserError(f"{pred_file}: size {pred.shape[1]}x{pred.shape[0]} differs from "
                            f"ground truth {gt_file} ({gt.shape[1]}x{gt.shape[0]})")
        problem = ground_truth_problem(gt_file, gt, dataset)
        if problem:
            raise UserError(f"{problem}; is dataset_name (--dataset_name) right?")
        bad = prediction_out_of_range(gt, pred, num_classes)
        if bad is not None:
            raise UserError(f"{pred_file}: prediction value {bad} is not a class "
                            f"(num_classes={num_classes}, valid 0..{num_classes - 1})")
        confusion.update(gt, pred)
    return confusion.matrix, len(names)


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


def evaluate_folder(res_path, gt_path, num_classes, names=None, workers=None, progress=True,
                    dataset=VOC12):
    """Evaluate ``res_path/*.png`` (or exactly ``names``, given without extension) against
    ``gt_path``, ``num_classes`` being C + 1 (segmentation) or C + 2 (seeds) of ``dataset``.

    ``workers``: decoding processes (default min(8, cpu count); 0 or 1 = in this process).
    Returns {"num_classes", "num_images", "class_names", "matrix" (int64 C[gt, pred]),
    "iou", "precision", "recall" (float64 arrays over all classes), "mIoU", "mp", "mr"
    (means over classes 0..C), "mean_classes" (C + 1)}. Raises UserError naming the file on
    any bad input.
    """
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise UserError(f"workers must be >= 0, got {workers}")
    names = _check_names(res_path, gt_path, names)
    tasks = [(res_path, gt_path, num_classes, chunk, dataset)
             for chunk in chunked(names, workers, PAIRS_PER_TASK)]
    confusion = ConfusionMatrix(num_classes, dataset)
    with progress_bar(total=len(names), shown=progress, desc="evaluating", unit="img") as bar:
        for matrix, count in imap_in_workers(_confusion_of_chunk, tasks, workers):
            confusion += matrix
            bar.update(count)
    return {"num_classes": num_classes, "num_images": len(names),
            "class_names": class_names(num_classes, dataset), "matrix": confusion.matrix,
            "mean_classes": confusion.mean_classes, **confusion.scores()}


def percent(value):
    """A score in percent for a table, 6 characters wide; NaN (an absent class) as n/a."""
    return "   n/a" if math.isnan(value) else f"{100 * value:6.2f}"


def format_table(result):
    """The familiar per-class table (IoU / precision / recall in percent) and the means."""
    k = result["mean_classes"]
    width = max(len(name) for name in result["class_names"][:k])
    lines = [f"{result['num_images']} images, {result['num_classes']} classes",
             f"{'class':<{width}}     IoU  precision  recall"]
    for c, name in enumerate(result["class_names"][:k]):
        lines.append(f"{name:<{width}}  {percent(result['iou'][c])}     "
                     f"{percent(result['precision'][c])}  {percent(result['recall'][c])}")
    if result["num_classes"] > k:
        matrix = result["matrix"]
        unlabeled = matrix[:k, k:].sum() / max(matrix[:k].sum(), 1)
        lines.append(f"({percent(unlabeled).strip()}% of labelled pixels predicted "
                     f"{', '.join(result['class_names'][k:])})")
    lines += [f"mIoU: {percent(result['mIoU']).strip()}",
              f"mp:   {percent(result['mp']).strip()}",
              f"mr:   {percent(result['mr']).strip()}"]
    if any(math.isnan(v) for v in result["iou"][:k]):
        lines.append("n/a: a class in neither ground truth nor prediction; mIoU leaves it out, "
                     "mp and mr count its precision and recall as 0 (the published convention)")
    return "\n".join(lines)


def result_to_json(result):
    """The evaluator's JSON object (recipe 9): {"mIoU", "mp", "mr", "per_class": {name: {"iou",
    "precision", "recall"}}} over classes 0..C, fractions in 0..1, NaN (absent class) as
    null."""
    k = result["mean_classes"]
    per_class = {name: {"iou": fraction(result["iou"][c]),
                        "precision": fraction(result["precision"][c]),
                        "recall": fraction(result["recall"][c])}
                 for c, name in enumerate(result["class_names"][:k])}
    return {"mIoU": fraction(result["mIoU"]), "mp": fraction(result["mp"]),
            "mr": fraction(result["mr"]), "per_class": per_class}


def result_json_bytes(result):
    """``result_to_json`` serialised (strict JSON: no NaN tokens)."""
    return (json.dumps(result_to_json(result), indent=1, allow_nan=False) + "\n").encode()
