"""ConfusionMatrix and evaluate_folder (recipe 7) against hand-made and golden numbers."""
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.errors import UserError
from lib.evaluation.folder import evaluate_folder, format_table, result_to_json
from lib.evaluation.metrics import ConfusionMatrix, class_names, pair_counts
from lib.voc import VOC_CLASSES

DATA = Path(__file__).parent / "data"
GOLDEN_PRED = DATA / "golden_pred"
GOLDEN_GT = DATA / "golden_voc" / "SegmentationClassAug"
TOL = 1e-12

# 3 classes; 255 = ignore. Pairs (gt, pred) counted by hand below.
HAND_GT = np.array([[0, 0, 1, 1],
                    [0, 2, 2, 1],
                    [255, 255, 2, 0]], np.uint8)
HAND_PRED = np.array([[0, 1, 1, 1],
                      [2, 2, 0, 1],
                      [0, 2, 2, 0]], np.uint8)
HAND_MATRIX = np.array([[2, 1, 1],   # gt 0: pred 0 at (0,0),(2,3); pred 1 at (0,1); pred 2 at (1,0)
                        [0, 3, 0],   # gt 1: pred 1 at (0,2),(0,3),(1,3)
                        [1, 0, 2]])  # gt 2: pred 0 at (1,2); pred 2 at (1,1),(2,2)


def naive_counts(gt, pred, n):
    """Per-pixel reference: one np.add.at increment per counted pixel."""
    matrix = np.zeros((n, n), np.int64)
    counted = (gt >= 0) & (gt < n)
    np.add.at(matrix, (gt[counted].astype(int), pred[counted].astype(int)), 1)
    return matrix


def write_png(path, labels):
    Image.fromarray(np.asarray(labels, np.uint8), "L").save(path)


def load_eval_json():
    return json.loads((DATA / "eval.json").read_text())


def assert_matches_published(result, expected):
    for key in ("mIoU", "mp", "mr"):
        assert result[key] == pytest.approx(expected[key], abs=TOL), key
    for key in ("iou", "precision", "recall"):
        ours = np.asarray(result[key][:21], np.float64)
        theirs = np.asarray(expected[key], np.float64)
        assert np.array_equal(np.isnan(ours), np.isnan(theirs)), key
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL, equal_nan=True, err_msg=key)


def test_voc_class_names():
    assert len(VOC_CLASSES) == 21
    assert VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person"
    assert VOC_CLASSES[-1] == "tvmonitor"
    assert class_names(22) == list(VOC_CLASSES) + ["unlabeled"]


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_hand_made_matrix_ignores_out_of_range_gt(dtype):
    confusion = ConfusionMatrix(3)
    confusion.update(HAND_GT.astype(dtype), HAND_PRED.astype(dtype))
    np.testing.assert_array_equal(confusion.matrix, HAND_MATRIX)
    assert confusion.matrix.sum() == 10  # 12 pixels, 2 with gt 255


def test_hand_made_scores():
    scores = ConfusionMatrix(3).update(HAND_GT, HAND_PRED).scores()
    # rows (gt) 4, 3, 3; columns (pred) 3, 4, 3; diagonal 2, 3, 2
    np.testing.assert_allclose(scores["iou"], [2 / 5, 3 / 4, 2 / 4], rtol=0, atol=1e-15)
    np.testing.assert_allclose(scores["precision"],
                               [2 / (3 + 1e-5), 3 / (4 + 1e-5), 2 / (3 + 1e-5)], rtol=1e-15)
    np.testing.assert_allclose(scores["recall"],
                               [2 / (4 + 1e-5), 3 / (3 + 1e-5), 2 / (3 + 1e-5)], rtol=1e-15)
    assert scores["mIoU"] == pytest.approx((2 / 5 + 3 / 4 + 2 / 4) / 3, abs=1e-15)


def test_seed_mode_counts_unlabeled_but_excludes_it_from_means():
    gt = np.array([[0, 0, 0, 1, 1, 1]], np.uint8)
    pred = np.array([[0, 21, 21, 1, 1, 21]], np.uint8)
    confusion = ConfusionMatrix(22).update(gt, pred)
    assert confusion.matrix[0, 21] == 2 and confusion.matrix[1, 21] == 1
    scores = confusion.scores()
    assert scores["iou"][21] == 0.0  # column 21 is not empty, row 21 is
    # classes 0 and 1 present; 2..20 absent (IoU NaN, precision = recall = 0); 21 excluded
    assert scores["mIoU"] == pytest.approx((1 / 3 + 2 / 3) / 2, abs=1e-15)
    assert scores["mp"] == pytest.approx((1 / (1 + 1e-5) + 2 / (2 + 1e-5)) / 21, abs=1e-15)
    assert scores["mr"] == pytest.approx((1 / (3 + 1e-5) + 2 / (3 + 1e-5)) / 21, abs=1e-15)


def test_empty_matrix_gives_nan_means():
    scores = ConfusionMatrix(21).scores()
    assert math.isnan(scores["mIoU"]) and scores["mp"] == 0.0


@pytest.mark.parametrize("noise", [False, True])
def test_pair_counts_equals_per_pixel_count(noise):
    """Both the run-length path (piecewise-constant maps) and the per-pixel path (noise)."""
    rng = np.random.default_rng(3)
    if noise:
        gt = rng.integers(0, 23, (60, 70)).astype(np.uint8)
        pred = rng.integers(0, 22, (60, 70)).astype(np.uint8)
    else:
        gt = np.kron(rng.integers(0, 23, (6, 7)), np.ones((10, 10), int)).astype(np.uint8)
        pred = np.kron(rng.integers(0, 22, (12, 14)), np.ones((5, 5), int)).astype(np.uint8)
    gt[gt == 22] = 255
    np.testing.assert_array_equal(pair_counts(gt, pred, 22), naive_counts(gt, pred, 22))


def test_update_rejects_bad_input():
    confusion = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="shape"):
        confusion.update(HAND_GT, HAND_PRED[:2])
    with pytest.raises(ValueError, match="255"):
        confusion.update(HAND_GT, np.where(HAND_PRED == 2, 255, HAND_PRED).astype(np.uint8))
    assert confusion.matrix.sum() == 0


def test_update_reads_predictions_only_where_the_ground_truth_is_counted():
    ignored = np.where(HAND_GT == 255, 250, HAND_PRED).astype(np.uint8)
    confusion = ConfusionMatrix(3).update(HAND_GT, ignored)
    np.testing.assert_array_equal(confusion.matrix, HAND_MATRIX)
    with pytest.raises(ValueError, match="prediction value 7"):
        confusion.update(HAND_GT, np.where(HAND_GT == 1, 7, ignored).astype(np.uint8))


def test_merge_and_iadd_add_counts():
    a = ConfusionMatrix(3).update(HAND_GT, HAND_PRED)
    b = ConfusionMatrix(3).update(HAND_GT, HAND_GT.clip(0, 2))
    merged = ConfusionMatrix(3)
    merged += a
    merged.merge(b.matrix)
    np.testing.assert_array_equal(merged.matrix, a.matrix + b.matrix)
    with pytest.raises(ValueError):
        merged += ConfusionMatrix(4)


def test_golden_22_class_mode_matches_published():
    result = evaluate_folder(GOLDEN_PRED, GOLDEN_GT, 22, workers=0, progress=False)
    assert result["num_images"] == 4
    assert_matches_published(result, load_eval_json()["22"])


def test_golden_21_class_mode_matches_published(tmp_path):
    for path in GOLDEN_PRED.glob("*.png"):
        pred = np.array(Image.open(path))
        write_png(tmp_path / path.name, np.where(pred == 21, 0, pred))
    result = evaluate_folder(tmp_path, GOLDEN_GT, 21, workers=0, progress=False)
    assert_matches_published(result, load_eval_json()["21"])


def test_worker_processes_give_the_same_matrix():
    one = evaluate_folder(GOLDEN_PRED, GOLDEN_GT, 22, workers=1, progress=False)
    two = evaluate_folder(GOLDEN_PRED, GOLDEN_GT, 22, workers=2, progress=False)
    np.testing.assert_array_equal(one["matrix"], two["matrix"])
    assert one["matrix"].sum() > 0


def test_names_select_exactly_the_listed_images():
    names = ["2099_000001", "2099_000003"]
    both = evaluate_folder(GOLDEN_PRED, GOLDEN_GT, 22, names=names, workers=0, progress=False)
    singles = [evaluate_folder(GOLDEN_PRED, GOLDEN_GT, 22, names=[n], workers=0,
                               progress=False)["matrix"] for n in names]
    assert both["num_images"] == 2
    np.testing.assert_array_equal(both["matrix"], singles[0] + singles[1])
    with pytest.raises(UserError, match=r"2 of 3 listed images have no prediction.*nope"):
        evaluate_folder(GOLDEN_PRED, GOLDEN_GT, 22, names=["2099_000000", "nope", "nada"],
                        workers=0, progress=False)


def copy_golden(tmp_path):
    res = tmp_path / "res"
    shutil.copytree(GOLDEN_PRED, res)
    return res


def test_errors_name_the_file(tmp_path):
    res = copy_golden(tmp_path)
    (res / "broken.png").write_bytes(b"not a png")
    gt = tmp_path / "gt"
    shutil.copytree(GOLDEN_GT, gt)
    shutil.copy(GOLDEN_GT / "2099_000000.png", gt / "broken.png")
    with pytest.raises(UserError, match=r"cannot read .*broken\.png"):
        evaluate_folder(res, gt, 22, workers=0, progress=False)
    Image.new("RGB", (74, 58)).save(res / "broken.png")
    with pytest.raises(UserError, match=r"broken\.png: expected a single-channel"):
        evaluate_folder(res, gt, 22, workers=0, progress=False)
    (res / "broken.png").unlink()
    write_png(res / "2099_000002.png", np.full((90, 60), 255))
    with pytest.raises(UserError, match=r"2099_000002\.png: prediction value 255"):
        evaluate_folder(res, gt, 22, workers=2, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no predictions found"):
        evaluate_folder(empty, gt, 22, workers=0, progress=False)


def test_table_and_json():
    result = evaluate_folder(GOLDEN_PRED, GOLDEN_GT, 22, workers=0, progress=False)
    table = format_table(result)
    assert "mIoU: 16.54" in table and "mp:   9.01" in table and "mr:   9.64" in table
    assert any(line.split()[:4] == ["background", "58.47", "100.00", "58.47"]
               for line in table.splitlines())
    assert "unlabeled" in table  # 22-class mode reports the share predicted unlabeled
    data = result_to_json(result)
    assert set(data) == {"mIoU", "mp", "mr", "per_class"}
    assert list(data["per_class"]) == list(VOC_CLASSES)
    assert data["per_class"]["aeroplane"] == {"iou": None, "precision": 0.0, "recall": 0.0}
    json.dumps(data, allow_nan=False)


def test_palette_ground_truth_reads_as_indices_and_dot_files_are_skipped(tmp_path):
    """VOC SegmentationClass PNGs are palette images; atomic writers leave ".tmp-*" files."""
    palette = [v for k in range(256) for v in (k * 7 % 256, k * 3 % 256, 255 - k)]
    for path in GOLDEN_GT.glob("*.png"):
        image = Image.fromarray(np.array(Image.open(path)), "P")
        image.putpalette(palette)
        image.save(tmp_path / path.name)
    res = copy_golden(tmp_path)
    (res / ".tmp-2099_000000.png").write_bytes(b"half-written")
    grey = evaluate_folder(GOLDEN_PRED, GOLDEN_GT, 22, workers=0, progress=False)
    indexed = evaluate_folder(res, tmp_path, 22, workers=0, progress=False)
    assert Image.open(tmp_path / "2099_000000.png").mode == "P"
    assert indexed["num_images"] == 4
    np.testing.assert_array_equal(indexed["matrix"], grey["matrix"])
