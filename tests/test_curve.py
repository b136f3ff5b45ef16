"""The cam_thresh sweep from saved class maps equals evaluating real threshold runs."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO
from infer_helpers import infer_config, write_checkpoint
from lib.errors import UserError
from lib.evaluation.folder import evaluate_folder
from lib.evaluation.metrics import ConfusionMatrix
from lib.evaluation.sweep import cell_index, image_confusions, parse_thresholds, sweep_thresholds
from lib.seeds.class_maps import class_maps_dir
from lib.seeds.threshold import seed_to_image_size, seeds_from_cams
from lib.stage2 import infer_cam
from lib.tooling.synthetic import generate_dataset


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Threshold runs at 0.25 (with class maps) and at 0.6 on six synthetic images."""
    root = str(tmp_path_factory.mktemp("voc"))
    generate_dataset(root, num_images=6, min_size=33, max_size=72, seed=5)
    checkpoint = write_checkpoint(str(tmp_path_factory.mktemp("model") / "model.pth"))
    res = tmp_path_factory.mktemp("result")
    at_025 = infer_cam.run(infer_config(root, checkpoint, res, save_class_maps=True))
    at_06 = infer_cam.run(infer_config(root, checkpoint, res, cam_thresh=0.6,
                                       test_cfg="_seedcam_0.6"))
    return {"root": root, "gt": os.path.join(root, "SegmentationClassAug"), 0.25: at_025,
            0.6: at_06}


def test_thresholds_parse_ranges_lists_and_reject_bad_values():
    grid = parse_thresholds(["0.05:0.95:0.05"])
    assert len(grid) == 19 and grid[0] == 0.05 and grid[-1] == 0.95 and 0.25 in grid
    assert parse_thresholds(["0.5,0.25", "0.1:0.3:0.1", "0.25"]) == [0.1, 0.2, 0.25, 0.3, 0.5]
    for bad in (["0"], ["1.2"], ["a"], ["0.1:0.5:0"], ["0.1:0.5"]):
        with pytest.raises(UserError):
            parse_thresholds(bad)


@pytest.mark.parametrize("size", [(37, 148), (50, 61)])
def test_image_confusions_equal_those_of_zoomed_seeds(size):
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(20, 41, 41)).astype(np.float32)
    record = {"maps": maps, "tags": np.array([3, 9]), "size": np.array(size),
              "bg": rng.random((41, 41)) < 0.3}
    gt = rng.integers(0, 22, size).astype(np.uint8)
    gt[rng.random(size) < 0.1] = 255
    thresholds = [0.2, 0.5, 0.8]
    got = image_confusions(record, gt, thresholds)
    for k, t in enumerate(thresholds):
        seed = seed_to_image_size(seeds_from_cams(maps, [3, 9], record["bg"], t), size)
        np.testing.assert_array_equal(got[k], ConfusionMatrix(22).update(gt, seed).matrix)
    # 41 -> 148 samples just past the last column: scipy's constant 0 must be counted as 0
    assert (cell_index((41, 41), size) == 0).any() == (size == (37, 148))


def test_sweep_points_equal_the_evaluation_of_threshold_runs(runs):
    points = sweep_thresholds(class_maps_dir(runs[0.25]), runs["gt"], [0.1, 0.25, 0.6, 0.9],
                              workers=0, progress=False)
    assert [p["cam_thresh"] for p in points] == [0.1, 0.25, 0.6, 0.9]
    for threshold, point in ((0.25, points[1]), (0.6, points[2])):
        result = evaluate_folder(runs[threshold], runs["gt"], 22, workers=0, progress=False)
        np.testing.assert_array_equal(point["matrix"], result["matrix"])
        for key in ("mIoU", "mp", "mr"):
            assert point[key] == result[key], (threshold, key)
    assert points[0]["mr"] > points[-1]["mr"] and points[1]["mIoU"] != points[2]["mIoU"]
    parallel = sweep_thresholds(class_maps_dir(runs[0.25]), runs["gt"], [0.1, 0.25, 0.6, 0.9],
                                workers=2, progress=False)
    for one, other in zip(points, parallel):
        np.testing.assert_array_equal(one["matrix"], other["matrix"])


def test_curve_cli_prints_the_table_and_writes_plot_and_json(runs, tmp_path):
    plot, out_json = tmp_path / "pr.png", tmp_path / "curve.json"
    proc = subprocess.run(
        [sys.executable, "tools/eval_mIoU.py", "--curve", "--res_path", runs[0.25],
         "--gt_path", runs["gt"], "--thresholds", "0.05:0.95:0.05", "--curve_plot", plot,
         "--json", out_json, "--workers", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert class_maps_dir(runs[0.25]) in proc.stdout and "0.250" in proc.stdout
    image = cv2.imread(str(plot))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 400
    curve = json.loads(out_json.read_text())
    assert len(curve) == 19 and set(curve[0]) == {"cam_thresh", "mIoU", "mp", "mr"}
    result = evaluate_folder(runs[0.25], runs["gt"], 22, workers=0, progress=False)
    point = next(p for p in curve if p["cam_thresh"] == 0.25)
    assert point["mIoU"] == pytest.approx(result["mIoU"], abs=1e-12)


def test_curve_cli_errors_are_one_line(runs, tmp_path):
    proc = subprocess.run(
        [sys.executable, "tools/eval_mIoU.py", "--curve", "--res_path", runs[0.6],
         "--gt_path", runs["gt"]], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "save_class_maps" in proc.stderr


def test_overrides_after_the_thresholds_are_config_keys(runs, tmp_path):
    """key=value after --thresholds' values and between options: overrides, not thresholds."""
    proc = subprocess.run(
        [sys.executable, "tools/threshold_curve.py", f"dataset_root={runs['root']}",
         "--res_path", runs[0.25], "--thresholds", "0.25", "0.6", "gt_path=SegmentationClassAug",
         "--workers", "0", "cam_thresh=0.6"], cwd=REPO, capture_output=True, text=True,
        timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"ground truth: {runs['gt']}" in proc.stdout
    rows = proc.stdout.splitlines()
    assert [r.split()[0] for r in rows if "configured cam_thresh" in r] == ["0.600"]


def test_an_empty_range_says_why(runs):
    proc = subprocess.run(
        [sys.executable, "tools/threshold_curve.py", "--res_path", runs[0.25], "--gt_path",
         runs["gt"], "--thresholds", "0.95:0.05:0.05"], cwd=REPO, capture_output=True,
        text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "'0.95:0.05:0.05' is empty" in proc.stderr and "0.95 is above 0.05" in proc.stderr


def test_the_table_and_plot_mark_the_configured_and_the_best_threshold(runs, tmp_path):
    plot = tmp_path / "pr.png"
    proc = subprocess.run(
        [sys.executable, "tools/threshold_curve.py", "--res_path", runs[0.25], "--gt_path",
         runs["gt"], "--thresholds", "0.05:0.95:0.05", "--curve_plot", plot, "--workers", "0",
         "cam_thresh=0.3"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()
    assert [r.split()[0] for r in rows if "configured cam_thresh" in r] == ["0.300"]
    assert sum("best mIoU" in r for r in rows) == 1
    picture = cv2.imread(str(plot))[:, :, ::-1].astype(int)
    from matplotlib.colors import to_rgb

    from lib.pictures.curve import BEST_COLOUR, CONFIGURED_COLOUR
    for colour in (BEST_COLOUR, CONFIGURED_COLOUR):
        rgb = np.round(255 * np.array(to_rgb(colour)))
        assert (np.abs(picture - rgb).sum(axis=2) <= 3).sum() > 20, colour  # its marks


def test_point_labels_do_not_overlap_and_the_marked_ones_are_kept():
    from lib.pictures.curve import curve_figure

    thresholds = np.round(np.arange(0.05, 0.951, 0.05), 2)
    points = [{"cam_thresh": t, "mp": 0.6 + 0.3 * min(t, 0.5), "mr": 0.9 - 0.8 * min(t, 0.5),
               "mIoU": 0.5 - abs(t - 0.45)} for t in thresholds]  # 0.5..0.95 on one spot
    fig = curve_figure(points, configured=0.25)
    renderer = fig.canvas.get_renderer()
    labels = fig.axes[0].texts
    texts = [label.get_text() for label in labels]
    assert "0.25" in texts and "0.45" in texts and "0.1" in texts
    assert 10 <= len(texts) < len(points)  # the ten points on one spot keep one label
    boxes = [label.get_window_extent(renderer) for label in labels]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
