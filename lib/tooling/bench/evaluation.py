"""Evaluation: label PNGs per second against a one-file-at-a-time loop."""
import os
import shutil
import time

import numpy as np
from PIL import Image

from lib.errors import UserError
from lib.dataset.description import VOC12
from lib.evaluation.folder import evaluate_folder
from lib.image import encode_png, read_label_png, read_prediction_png
from lib.tooling.bench.common import format_table


def make_eval_folders(root, work, count):
    """``count`` (prediction, ground truth) PNG pairs made from the synthetic ground truth:
    grey seed-like predictions (written as the seed writer does) and palette ground truth."""
    gt_dir = os.path.join(root, VOC12.seed_gt)
    sources = sorted(f for f in os.listdir(gt_dir) if f.endswith(".png"))
    pred_out, gt_out = os.path.join(work, "eval_pred"), os.path.join(work, "eval_gt")
    for folder in (pred_out, gt_out):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    encoded = []
    for source in sources:
        gt = read_label_png(os.path.join(gt_dir, source))
        shifted = np.roll(gt, 9, axis=1)  # a prediction off by a few pixels
        pred = np.where((gt == 255) | (shifted == 255), VOC12.unlabeled, shifted).astype(np.uint8)
        encoded.append((encode_png(pred), os.path.join(gt_dir, source)))
    for i in range(count):
        data, gt_file = encoded[i % len(encoded)]
        name = f"bench_{i:06d}.png"
        with open(os.path.join(pred_out, name), "wb") as f:
            f.write(data)
        shutil.copyfile(gt_file, os.path.join(gt_out, name))
    return pred_out, gt_out


def one_by_one_confusion(res_path, gt_path, num_classes):
    """The baseline: each file pair read with PIL in turn, counted with np.bincount."""
    n = num_classes
    matrix = np.zeros((n, n), np.int64)
    for file in sorted(os.listdir(res_path)):
        pred = np.array(Image.open(os.path.join(res_path, file)))
        gt = np.array(Image.open(os.path.join(gt_path, file)))
        counted = gt < n
        index = n * gt[counted].astype(np.int64) + pred[counted]
        matrix += np.bincount(index, minlength=n * n).reshape(n, n)
    return matrix


def _decode_ms(folder, reader, limit=200):
    files = sorted(os.listdir(folder))[:limit]
    start = time.perf_counter()
    for file in files:
        reader(os.path.join(folder, file))
    return 1e3 * (time.perf_counter() - start) / len(files)


def bench_eval(root, work, options):
    """Files/s of the baseline loop, of evaluate_folder in one process and in
    ``eval_workers`` processes (their matrices must agree), and per-file decode times."""
    res, gt = make_eval_folders(root, work, options.eval_images)
    start = time.perf_counter()
    baseline = one_by_one_confusion(res, gt, VOC12.seed_classes)
    rates = {"one_by_one": options.eval_images / (time.perf_counter() - start)}
    for key, workers in (("ours_1_process", 0), ("ours_parallel", options.eval_workers)):
        start = time.perf_counter()
        result = evaluate_folder(res, gt, VOC12.seed_classes, workers=workers, progress=False)
        rates[key] = options.eval_images / (time.perf_counter() - start)
        if not np.array_equal(result["matrix"], baseline):
            raise UserError(f"evaluate_folder ({key}) disagrees with the baseline loop")
    decode = {"pil": _decode_ms(res, lambda path: np.asarray(Image.open(path))),
              "ours": _decode_ms(res, read_prediction_png)}
    return {"files": options.eval_images, "num_classes": VOC12.seed_classes,
            "workers": options.eval_workers, "files_per_s": rates,
            "speedup": rates["ours_parallel"] / rates["one_by_one"],
            "prediction_decode_ms": decode}


def eval_table(result):
    rates = result["files_per_s"]
    body = [["one file at a time, PIL + np.bincount", f"{rates['one_by_one']:.0f}"],
            ["evaluate_folder, 1 process", f"{rates['ours_1_process']:.0f}"],
            [f"evaluate_folder, {result['workers']} processes", f"{rates['ours_parallel']:.0f}"]]
    decode = result["prediction_decode_ms"]
    return (f"\nevaluation: {result['files']} label PNG pairs, {result['num_classes']} classes\n"
            + format_table(["method", "files/s"], body)
            + f"\n{result['speedup']:.1f}x the baseline; grey prediction PNG decode "
              f"{decode['pil']:.2f} ms (PIL) vs {decode['ours']:.2f} ms (read_prediction_png)")
