"""Segmentation metrics of recipe 7: a confusion matrix and its IoU / precision / recall.

The numbers are computed in float64 exactly as the published evaluation writes them, so they
match it to rounding: IoU = C_kk / (row_k + col_k - C_kk), precision = C_kk / (col_k + 1e-5),
recall = C_kk / (row_k + 1e-5), with NaN-ignoring means over the dataset's classes 0..C only
(in seed mode, C + 2 classes, class C + 1 "unlabeled" is counted in the matrix but not in the
means: VOC 22 classes and means over 21, COCO 82 and 81).
"""
import math
import warnings

import numpy as np

from lib.dataset.description import UNLABELED_NAME, VOC12

EPS = 1e-5


def class_names(num_classes, dataset=VOC12):
    """Names of classes 0..num_classes-1: the dataset's classes, then "unlabeled" (seed class
    C + 1)."""
    names = dataset.class_names + (UNLABELED_NAME,)
    if num_classes <= len(names):
        return list(names[:num_classes])
    return list(names) + [f"class_{k}" for k in range(len(names), num_classes)]


def pair_counts(gt, pred, num_classes):
    """The num_classes x num_classes int64 matrix of (gt, pred) pixel pairs with gt in range.

    Pixels whose gt is outside [0, num_classes) (255 = ignore) are skipped; ``pred`` must be in
    [0, num_classes) wherever gt is counted. Label maps are piecewise constant, so pixels are
    counted per run of equal consecutive (gt, pred) pairs, np.bincount weighted by run length:
    the same counts as a per-pixel bincount, about three times faster on real masks. Noise-like
    maps (many short runs) take the per-pixel bincount instead.
    """
    gt = np.ascontiguousarray(gt).ravel()
    pred = np.ascontiguousarray(pred).ravel()
    n = num_classes
    if gt.size == 0:
        return np.zeros((n, n), np.int64)
    change = gt[1:] != gt[:-1]
    change |= pred[1:] != pred[:-1]
    run_starts = np.flatnonzero(change)
    if run_starts.size > gt.size // 4:
        counted = (gt >= 0) & (gt < n)
        index = gt[counted].astype(np.intp) * n + pred[counted]
        return np.bincount(index, minlength=n * n).astype(np.int64).reshape(n, n)
    run_starts += 1
    run_starts = np.concatenate(([0], run_starts))
    run_lengths = np.diff(run_starts, append=gt.size)
    run_gt, run_pred = gt[run_starts], pred[run_starts]
    counted = (run_gt >= 0) & (run_gt < n)
    index = run_gt[counted].astype(np.intp) * n + run_pred[counted]
    counts = np.bincount(index, weights=run_lengths[counted], minlength=n * n)
    return counts.astype(np.int64).reshape(n, n)


def prediction_out_of_range(gt, pred, num_classes):
    """A prediction value outside [0, num_classes) on a counted pixel (ground truth a class),
    or None. Where the ground truth is not counted (255 = ignore) the prediction is not read,
    as in the published evaluator. Images whose values are all in range cost two reductions."""
    if pred.size == 0 or (pred.min() >= 0 and pred.max() < num_classes):
        return None
    counted = pred[(gt >= 0) & (gt < num_classes)]
    if counted.size == 0:
        return None
    high, low = counted.max(), counted.min()
    if high >= num_classes:
        return int(high)
    return int(low) if low < 0 else None


def fraction(value):
    """A score as a JSON number: NaN (a class absent from both sides) becomes None (null)."""
    value = float(value)
    return None if math.isnan(value) else value


class ConfusionMatrix:
    """Pixel counts C[gt, pred] accumulated over images; rows ground truth, columns prediction.

    Counts are int64 (exact, so merging partial matrices in any order gives the same result).
    The means run over the classes 0..C of ``dataset`` (all of a smaller matrix): seed mode's
    "unlabeled" C + 1 is left out.
    """

    def __init__(self, num_classes, dataset=VOC12):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.mean_classes = min(self.num_classes, dataset.num_classes)
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, gt, pred):
        """Add one image: ``gt`` and ``pred`` are same-shape integer label maps.

        Raises ValueError if the shapes differ or a prediction value is outside
        [0, num_classes) on a counted pixel (where the ground truth is ignored, 255, the
        prediction is not read, as in the published evaluator).
        """
        gt = np.asarray(gt)
        pred = np.asarray(pred)
        if gt.shape != pred.shape:
            raise ValueError(f"shape mismatch: gt {gt.shape} vs prediction {pred.shape}")
        for name, labels in (("gt", gt), ("prediction", pred)):
            if labels.size and not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"{name} must hold integer labels, got dtype {labels.dtype}")
        bad = prediction_out_of_range(gt, pred, self.num_classes)
        if bad is not None:
            raise ValueError(f"prediction value {bad} is outside [0, {self.num_classes})")
        self.matrix += pair_counts(gt, pred, self.num_classes)
        return self

    def merge(self, other):
        """Add the counts of another ConfusionMatrix (or an array of counts) of the same size."""
        counts = other.matrix if isinstance(other, ConfusionMatrix) else np.asarray(other)
        if counts.shape != self.matrix.shape:
            raise ValueError(f"cannot merge a {counts.shape} matrix into {self.matrix.shape}")
        self.matrix += counts.astype(np.int64, copy=False)
        return self

    def __iadd__(self, other):
        return self.merge(other)

    def scores(self):
        """Per-class IoU / precision / recall (arrays over all classes) and their means.

        Returns {"iou", "precision", "recall": float64 arrays of length num_classes,
        "mIoU", "mp", "mr": NaN-ignoring means over classes 0..mean_classes-1 (NaN if none)}.
        IoU is NaN for a class absent from both ground truth and prediction.
        """
        hist = self.matrix.astype(np.float64)
        diag = np.diag(hist)
        rows, cols = hist.sum(1), hist.sum(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = diag / (rows + cols - diag)
        precision = diag / (cols + EPS)
        recall = diag / (rows + EPS)
        k = self.mean_classes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slice -> NaN mean
            means = {key: float(np.nanmean(values[:k]))
                     for key, values in (("mIoU", iou), ("mp", precision), ("mr", recall))}
        return {"iou": iou, "precision": precision, "recall": recall, **means}
