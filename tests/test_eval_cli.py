"""tools/eval_mIoU.py end to end: table, recipe 9 JSON equal to the published numbers, errors."""
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.voc import VOC_CLASSES

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
GOLDEN_PRED = DATA / "golden_pred"
GOLDEN_VOC = DATA / "golden_voc"
GOLDEN_GT = GOLDEN_VOC / "SegmentationClassAug"
TOL = 1e-12


def run_cli(*args):
    return subprocess.run([sys.executable, "tools/eval_mIoU.py", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def assert_json_matches_published(path, expected):
    data = json.loads(Path(path).read_text())
    assert set(data) == {"mIoU", "mp", "mr", "per_class"}
    for key in ("mIoU", "mp", "mr"):
        assert data[key] == pytest.approx(expected[key], abs=TOL), key
    assert list(data["per_class"]) == list(VOC_CLASSES)
    for c, name in enumerate(VOC_CLASSES):
        entry = data["per_class"][name]
        assert set(entry) == {"iou", "precision", "recall"}
        for key in ("iou", "precision", "recall"):
            want = expected[key][c]
            if math.isnan(want):
                assert entry[key] is None, (name, key)
            else:
                assert entry[key] == pytest.approx(want, abs=TOL), (name, key)
                assert 0.0 <= entry[key] <= 1.0


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def published():
    return json.loads((DATA / "eval.json").read_text())


def test_cli_prints_table_and_writes_published_json(tmp_path, published):
    out = tmp_path / "scores.json"
    proc = run_cli("--res_path", GOLDEN_PRED, "--gt_path", GOLDEN_GT, "--num_classes", 22,
                   "--json", out, "--workers", 2)
    assert proc.returncode == 0, proc.stderr
    assert "mIoU: 16.54" in proc.stdout and "mp:   9.01" in proc.stdout
    assert "tvmonitor" in proc.stdout
    assert_json_matches_published(out, published["22"])


def test_cli_takes_paths_from_config_and_reads_list(tmp_path, published):
    """21-class mode; gt = dataset_root/SegmentationClass, res = res_path/<cfg_name>_<split>
    (what infer_seg writes)."""
    res = tmp_path / "result" / "mine_val"
    res.mkdir(parents=True)
    for path in GOLDEN_PRED.glob("*.png"):
        pred = np.array(Image.open(path))
        Image.fromarray(np.where(pred == 21, 0, pred).astype(np.uint8), "L").save(res / path.name)
    (res / "9999_999999.png").write_bytes(b"not listed, never read")
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(f"cfg_name: mine\ntest_cfg: _seeds\nres_path: {tmp_path / 'result'}\n"
                   f"gt_path: SegmentationClassAug/\nnum_classes: 21\n")
    names = tmp_path / "list.txt"
    names.write_text("".join(f"JPEGImages/{p.stem}.jpg SegmentationClassAug/{p.stem}.png\n"
                             for p in sorted(GOLDEN_PRED.glob("*.png"))))
    out = tmp_path / "scores.json"
    proc = run_cli("--cfg_file", cfg, f"dataset_root={GOLDEN_VOC}", "--list", names,
                   "--json", out, "--workers", 0)
    assert proc.returncode == 0, proc.stderr
    assert "4 images, 21 classes" in proc.stdout
    assert_json_matches_published(out, published["21"])


def test_cli_takes_overrides_among_its_options(tmp_path, published):
    """key=value before and after an option, as a user writes them: each is taken."""
    gt = tmp_path / "gt"
    shutil.copytree(GOLDEN_GT, gt)
    out = tmp_path / "scores.json"
    proc = run_cli("--cfg_file", REPO / "config" / "sgan_vgg16_321x321.yml",
                   f"dataset_root={GOLDEN_VOC}", "--res_path", GOLDEN_PRED, f"gt_path={gt}",
                   "--json", out, "--workers", 0, "num_classes=22")
    assert proc.returncode == 0, proc.stderr
    assert f"ground truth: {gt}" in proc.stdout
    assert_json_matches_published(out, published["22"])


def test_cli_error_prediction_without_ground_truth(tmp_path):
    res = tmp_path / "res"
    shutil.copytree(GOLDEN_PRED, res)
    shutil.copy(GOLDEN_PRED / "2099_000000.png", res / "2099_777777.png")
    proc = run_cli("--res_path", res, "--gt_path", GOLDEN_GT, "--num_classes", 22)
    assert_one_line_error(proc, "2099_777777.png", "no ground truth")


def test_cli_without_a_list_scores_the_predictions_there_are(tmp_path, published):
    """As the published evaluator: ground truth without a prediction (VOC's folder holds more
    masks than the seeds) is left out and counted; the scores are those of the predictions."""
    gt = tmp_path / "gt"
    shutil.copytree(GOLDEN_GT, gt)
    for extra in ("2099_000010", "2099_000011"):
        shutil.copy(GOLDEN_GT / "2099_000000.png", gt / f"{extra}.png")
    out = tmp_path / "scores.json"
    proc = run_cli("--res_path", GOLDEN_PRED, "--gt_path", gt, "--num_classes", 22,
                   "--json", out, "--workers", 0)
    assert proc.returncode == 0, proc.stderr
    assert "4 images, 22 classes" in proc.stdout
    assert "ground-truth files not scored: 2 of 6" in proc.stdout
    assert_json_matches_published(out, published["22"])


def test_cli_reads_predictions_only_where_the_ground_truth_is_a_class(tmp_path, published):
    """A value outside the classes under ignored ground truth (255) is not read, as
    published; on a counted pixel it is an error naming the file."""
    res = tmp_path / "res"
    res.mkdir()
    for png in sorted(GOLDEN_PRED.glob("*.png")):
        pred = np.array(Image.open(png))
        pred[np.array(Image.open(GOLDEN_GT / png.name)) == 255] = 200
        Image.fromarray(pred, "L").save(res / png.name)
    out = tmp_path / "scores.json"
    proc = run_cli("--res_path", res, "--gt_path", GOLDEN_GT, "--json", out, "--workers", 0)
    assert proc.returncode == 0, proc.stderr
    assert_json_matches_published(out, published["22"])
    pred = np.array(Image.open(res / "2099_000001.png"))
    counted = np.argwhere(np.array(Image.open(GOLDEN_GT / "2099_000001.png")) != 255)[0]
    pred[tuple(counted)] = 200
    Image.fromarray(pred, "L").save(res / "2099_000001.png")
    proc = run_cli("--res_path", res, "--gt_path", GOLDEN_GT, "--workers", 0)
    assert_one_line_error(proc, "2099_000001.png", "prediction value 200")


def test_cli_error_size_mismatch(tmp_path):
    res = tmp_path / "res"
    shutil.copytree(GOLDEN_PRED, res)
    Image.fromarray(np.zeros((10, 12), np.uint8), "L").save(res / "2099_000001.png")
    proc = run_cli("--res_path", res, "--gt_path", GOLDEN_GT, "--workers", 2)
    assert_one_line_error(proc, "2099_000001.png", "size 12x10")


def test_cli_error_prediction_value_out_of_range(tmp_path):
    # the golden seeds hold 21 (unlabeled), which is no class in 21-class mode
    proc = run_cli("--res_path", GOLDEN_PRED, "--gt_path", GOLDEN_GT, "--num_classes", 21,
                   "--workers", 0)
    assert_one_line_error(proc, "golden_pred", "prediction value 21")


def test_segmentation_mode_from_a_config_scores_against_segmentation_class(tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    for png in sorted(GOLDEN_PRED.glob("*.png")):
        pred = np.array(Image.open(png))
        Image.fromarray(np.where(pred == 21, 0, pred).astype(np.uint8), "L").save(res / png.name)
    out = tmp_path / "seg.json"
    names = tmp_path / "list.txt"  # golden_voc has no ImageSets/Segmentation/val.txt
    names.write_text("".join(f"{png.stem}\n" for png in sorted(GOLDEN_PRED.glob("*.png"))))
    proc = run_cli("--res_path", res, "--num_classes", 21, "--cfg_file",
                   REPO / "config" / "sgan_vgg16_321x321.yml", f"dataset_root={GOLDEN_VOC}",
                   "--json", out, "--list", names)
    assert proc.returncode == 0, proc.stderr
    assert f"ground truth: {GOLDEN_VOC / 'SegmentationClass'}" in proc.stdout
    expected = json.loads((DATA / "eval.json").read_text())["21"]
    assert json.loads(out.read_text())["mIoU"] == pytest.approx(expected["mIoU"], abs=1e-12)


def test_cli_table_says_how_to_read_it():
    proc = run_cli("--res_path", GOLDEN_PRED, "--gt_path", GOLDEN_GT, "--num_classes", 22,
                   "--workers", 0)
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()
    assert any(row.split()[1:2] == ["n/a"] for row in rows)  # a class absent from both
    assert "n/a: a class in neither ground truth nor prediction" in proc.stdout
    assert "mp and mr count its precision and recall as 0 (the published convention)" in \
        proc.stdout
    assert "(the table in percent; --json writes fractions in 0..1)" in proc.stdout


def test_cli_errors_say_which_default_or_key_to_fix(tmp_path):
    def run_elsewhere(*args):  # a working folder without data/VOC2012
        return subprocess.run([sys.executable, str(REPO / "tools" / "eval_mIoU.py"),
                               *map(str, args)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)

    proc = run_elsewhere("--res_path", GOLDEN_PRED, "--num_classes", 22)
    assert_one_line_error(proc, "ground-truth folder not found: data/VOC2012/SegmentationClassAug",
                          "the default", "no --cfg_file", "--gt_path")
    paper = REPO / "config" / "sgan_vgg16_321x321.yml"
    proc = run_elsewhere("--res_path", GOLDEN_PRED, "--gt_path", GOLDEN_GT, "--cfg_file", paper)
    assert_one_line_error(proc, "config key 'dataset_root'", "data/VOC2012")
    names = tmp_path / "list.txt"
    names.write_text("".join(f"{p.stem}\n" for p in GOLDEN_PRED.glob("*.png")))
    (tmp_path / "empty").mkdir()
    proc = run_cli("--res_path", tmp_path / "empty", "--gt_path", GOLDEN_GT, "--list", names)
    assert_one_line_error(proc, "no predictions in", "4 names of", "the folder inference wrote")
    assert "--no-strict" not in proc.stderr


def test_help_says_which_ground_truth_each_mode_defaults_to():
    """Seeds: the config's gt_path; segmentation: the dataset's SegmentationClass/ (as
    evaluation_paths reads), in every dataset."""
    from lib.dataset.description import COCO14, VOC12

    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "(default: for seeds the config's dataset_root/gt_path; for segmentation " \
        "dataset_root/SegmentationClass/, whatever gt_path says)" in text
    assert VOC12.segmentation_gt == COCO14.segmentation_gt == "SegmentationClass/"
