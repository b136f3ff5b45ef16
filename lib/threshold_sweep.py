"""Seed quality against cam_thresh, from saved class maps (no network): a precision-recall curve.

For each image, the seeds of every threshold are painted by lib.seeds.seeds_from_cams at
feature size, exactly as infer_cam paints them. Zooming a seed to image size with nearest
neighbour sends each image pixel to one feature cell, so the confusion matrix of a
threshold is the per-cell ground-truth histogram summed by the cell's seed label: one small
matrix product per image for all thresholds, the same counts as evaluating the PNGs.
"""
import io
import json
import math
import os
import signal
from multiprocessing import Pool

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from lib.class_maps import list_class_maps, load_class_maps  # noqa: E402
from lib.dataset.voc12_sgan import zoom_to  # noqa: E402
from lib.errors import UserError  # noqa: E402
from lib.evaluate import default_workers, read_label_png  # noqa: E402
from lib.metrics import ConfusionMatrix  # noqa: E402
from lib.seeds import seeds_from_cams  # noqa: E402
from lib.utils.io import atomic_write_bytes  # noqa: E402

SEED_CLASSES = 22  # 0 background, 1..20, 21 unlabeled
DEFAULT_THRESHOLDS = "0.05:0.95:0.05"
MAX_CHUNK = 16


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
                    values += [round(start + k * step, 10) for k in range(max(count, 0))]
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


def image_confusions(record, gt, thresholds, ignore_conflict=False):
    """(len(thresholds), 22, 22) int64 confusion matrices C[gt, seed] of one image."""
    bg = record["bg"]
    cells = cell_index(bg.shape, record["size"]).ravel()
    gt = gt.ravel()
    counted = gt < SEED_CLASSES
    per_cell = np.bincount(cells[counted] * SEED_CLASSES + gt[counted],
                           minlength=(bg.size + 1) * SEED_CLASSES)
    per_cell = per_cell.reshape(bg.size + 1, SEED_CLASSES)
    masks = np.zeros((len(thresholds), bg.size + 1), np.uint8)  # cell 0: the constant 0
    for k, t in enumerate(thresholds):
        masks[k, 1:] = seeds_from_cams(record["maps"], record["tags"], bg, t,
                                       ignore_conflict).ravel()
    one_hot = (masks[..., None] == np.arange(SEED_CLASSES)).astype(np.float64)
    # float64 sums of pixel counts are exact far beyond any image size
    return np.rint(per_cell.T.astype(np.float64) @ one_hot).astype(np.int64)


def _ignore_sigint():
    """Workers leave Ctrl-C to the parent, which stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _chunk_confusions(task):
    """Worker: the summed confusion matrices of a chunk of names, and the chunk's size."""
    maps_dir, gt_dir, names, thresholds, ignore_conflict = task
    total = np.zeros((len(thresholds), SEED_CLASSES, SEED_CLASSES), np.int64)
    for name in names:
        record = load_class_maps(os.path.join(maps_dir, name + ".npz"))
        gt_file = os.path.join(gt_dir, name + ".png")
        if not os.path.isfile(gt_file):
            raise UserError(f"class maps of {name} have no ground truth {gt_file}")
        gt = read_label_png(gt_file)
        if gt.shape != tuple(record["size"]):
            raise UserError(f"{gt_file}: size {gt.shape[1]}x{gt.shape[0]} differs from the "
                            f"image size in its class maps ({record['size'][1]}x"
                            f"{record['size'][0]})")
        total += image_confusions(record, gt, thresholds, ignore_conflict)
    return total, len(names)


def _chunk_results(tasks, workers):
    """Results of the chunk tasks, from a pool when more than one process is useful."""
    if min(workers, len(tasks)) <= 1:
        yield from map(_chunk_confusions, tasks)
        return
    with Pool(min(workers, len(tasks)), initializer=_ignore_sigint) as pool:
        yield from pool.imap_unordered(_chunk_confusions, tasks)


def sweep_thresholds(maps_dir, gt_dir, thresholds, ignore_conflict=False, names=None,
                     workers=None, progress=True):
    """Seed scores at each threshold, from the class maps in ``maps_dir`` (all, or ``names``).

    Returns a list of {"cam_thresh", "mIoU", "mp", "mr", "matrix"} in threshold order, the
    scores as lib.evaluate.evaluate_folder gives them for the seeds of that threshold.
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
                            + ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else ""))
    if not names:
        raise UserError(f"no class maps found: no *.npz in {maps_dir}")
    workers = default_workers() if workers is None else int(workers)
    chunk = max(1, min(MAX_CHUNK, math.ceil(len(names) / (max(workers, 1) * 8))))
    tasks = [(maps_dir, gt_dir, names[i:i + chunk], thresholds, ignore_conflict)
             for i in range(0, len(names), chunk)]
    total = np.zeros((len(thresholds), SEED_CLASSES, SEED_CLASSES), np.int64)
    with tqdm(total=len(names), desc="threshold sweep", unit="img",
              disable=None if progress else True) as bar:
        for matrices, count in _chunk_results(tasks, workers):
            total += matrices
            bar.update(count)
    points = []
    for threshold, matrix in zip(thresholds, total):
        scores = ConfusionMatrix(SEED_CLASSES).merge(matrix).scores()
        points.append({"cam_thresh": threshold, "mIoU": scores["mIoU"], "mp": scores["mp"],
                       "mr": scores["mr"], "matrix": matrix})
    return points


def format_curve(points):
    """A table of threshold, precision, recall and mIoU in percent; the best mIoU marked."""
    best = max(range(len(points)), key=lambda i: np.nan_to_num(points[i]["mIoU"], nan=-1))
    lines = ["cam_thresh  precision  recall    mIoU"]
    for i, p in enumerate(points):
        lines.append(f"{p['cam_thresh']:10.3f}  {100 * p['mp']:9.2f}  {100 * p['mr']:6.2f}  "
                     f"{100 * p['mIoU']:6.2f}" + ("  <- best mIoU" if i == best else ""))
    return "\n".join(lines)


def _fraction(value):
    return None if math.isnan(value) else float(value)


def curve_json_bytes(points):
    """The curve as a JSON list of {"cam_thresh", "mIoU", "mp", "mr"} (fractions in 0..1,
    NaN as null), without the matrices."""
    curve = [{"cam_thresh": p["cam_thresh"], "mIoU": _fraction(p["mIoU"]),
              "mp": _fraction(p["mp"]), "mr": _fraction(p["mr"])} for p in points]
    return (json.dumps(curve, indent=1, allow_nan=False) + "\n").encode()


def curve_plot_png(points, title="seeds against cam_thresh"):
    """PNG bytes: precision against recall with each point's threshold, and precision,
    recall and mIoU against the threshold."""
    thresholds = np.array([p["cam_thresh"] for p in points])
    mp, mr, miou = (100 * np.array([p[k] for p in points]) for k in ("mp", "mr", "mIoU"))
    fig, (pr_ax, sweep_ax) = plt.subplots(1, 2, figsize=(10, 4.2))
    pr_ax.plot(mr, mp, "o-", color="tab:blue", markersize=4)
    for t, x, y in zip(thresholds, mr, mp):
        pr_ax.annotate(f"{t:g}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    pr_ax.set_xlabel("mean recall (%)")
    pr_ax.set_ylabel("mean precision (%)")
    pr_ax.set_title("precision-recall (labels: cam_thresh)")
    pr_ax.grid(alpha=0.3)
    for values, label in ((mp, "precision"), (mr, "recall"), (miou, "mIoU")):
        sweep_ax.plot(thresholds, values, "o-", markersize=3, label=label)
    sweep_ax.set_xlabel("cam_thresh")
    sweep_ax.set_ylabel("%")
    sweep_ax.set_title(title)
    sweep_ax.grid(alpha=0.3)
    sweep_ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def save_curve_plot(points, path):
    """Write :func:`curve_plot_png` to ``path`` atomically."""
    atomic_write_bytes(path, curve_plot_png(points))
