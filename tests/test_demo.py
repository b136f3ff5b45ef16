"""make demo's tool at a tiny size: stage 1 to held-out scores, both tables, the three
figures, validation while stage 3 trains, and the reuse of every step on a rerun."""
import os
import subprocess
import sys

import cv2
import pytest

from conftest import REPO
from lib.training.metrics import read_metrics

TINY = ("max_iter=2", "step_size=2", "batch_size=2", "num_worker=0", "width_mult=0.125")


def test_demo_runs_from_the_tags_and_reuses_its_training(tmp_path):
    root, models = tmp_path / "voc", tmp_path / "m"
    figures = {kind: tmp_path / f"{kind}.png" for kind in ("seed", "segmentation", "curves")}
    cmd = [sys.executable, "tools/demo.py", "--cfg_file", "config/demo.yml",
           "--num_images", "10", "--min_size", "33", "--max_size", "61",
           *(arg for kind, path in figures.items() for arg in (f"--{kind}_figure", str(path))),
           f"dataset_root={root}", f"save_model_path={models}", f"res_path={tmp_path}/r",
           "resize=33", *TINY]
    for setting in ("resize=33", *TINY):
        cmd += ["--cls_set", setting]
    for setting in (*TINY, "seg_resize=41", "crop_size=33", "test_scales=[33]", "lr_step=1",
                    "val_every=1"):
        cmd += ["--seg_set", setting]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "initial seeds" in first.stdout and "SGAN seeds" in first.stdout
    assert "mean recall (mr)" in first.stdout and "aeroplane" in first.stdout
    assert "Seeds of the 8 training images (initial seeds: stage 1's CAMs" in first.stdout
    assert "Segmentation of the 2 held-out val images" in first.stdout
    assert len(os.listdir(root / "JPEGImages")) == 10
    lists = root / "ImageSets" / "Segmentation"
    train, val = ((lists / f"{split}.txt").read_text().split() for split in ("train", "val"))
    # stage 1's seeds of the training images, where SGAN reads them; its backbone everywhere
    initial = root / "ini_seed" / "cls_demo_0.3"  # <seed_subdir>_<fg_thresh>
    assert sorted(f[:-4] for f in os.listdir(initial) if f.endswith(".png")) == sorted(train)
    backbone = models / "cls_demo" / "vgg_init.pth"
    assert f"weights from {backbone}" in (models / "sgan_demo" / "train.log").read_text()
    for kind in ("initial", "sgan"):
        log = (models / f"seg_demo_{kind}" / "train.log").read_text()
        assert f"weights from {backbone}" in log and "holds a backbone alone" in log
        rows = read_metrics(models / f"seg_demo_{kind}" / "metrics.csv")
        assert [r["iteration"] for r in rows if "val_mIoU" in r] == [1, 2]
        labels = tmp_path / "r" / f"seg_demo_{kind}_val"  # the held-out images only
        assert sorted(f[:-4] for f in os.listdir(labels) if f.endswith(".png")) == sorted(val)
    for figure in figures.values():
        picture = cv2.imread(str(figure))
        assert picture is not None and picture.shape[1] > picture.shape[0] * 0.5
    assert "Segmentation of" in (models / "sgan_demo" / "demo_results.txt").read_text()
    assert not list(models.glob("*.console.txt"))  # side by side, finished cleanly

    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("trained with this config") == 4  # every network
    assert again.stdout == first.stdout
    no_figures = [arg for kind in figures for arg in (f"--{kind}_figure", "")]
    retrain = subprocess.run(cmd + no_figures + ["max_iter=3"], cwd=REPO, capture_output=True,
                             text=True)
    assert retrain.returncode == 0, retrain.stderr
    # SGAN retrains, so does the network on its new seeds; stage 1 and the network on its
    # seeds do not
    assert retrain.stderr.count("trained with this config") == 2
    assert "cls_demo/model_iter_2.pth trained with this config" in retrain.stderr
    assert "seg_demo_initial/model_iter_2.pth trained with this config" in retrain.stderr
    # new training data (a tree generated again): every network trains again, stage 1 first
    os.utime(root / "im_tags.pkl", (os.path.getmtime(models / "cls_demo" / "model_iter_2.pth")
                                    + 10,) * 2)
    new_data = subprocess.run(cmd + no_figures, cwd=REPO, capture_output=True, text=True)
    assert new_data.returncode == 0, new_data.stderr
    assert "trained with this config" not in new_data.stderr


def test_a_tree_whose_tags_list_held_out_images_is_refused(tmp_path):
    from lib.config import load_config
    from lib.dataset.tags import load_tags, save_tags
    from lib.errors import UserError
    from lib.tooling.demo import prepare_data
    from lib.tooling.synthetic import generate_dataset
    from lib.training.runtime import setup_logger

    root = tmp_path / "voc"
    generate_dataset(str(root), num_images=5, min_size=33, max_size=41)
    cfg = load_config(os.path.join(REPO, "config", "demo.yml"), [f"dataset_root={root}"])
    logger = setup_logger("test.demo")
    assert prepare_data(cfg, 5, 33, 41, 0, logger) == sorted(load_tags(root / "im_tags.pkl"))
    tags = load_tags(root / "im_tags.pkl")  # an older generator's: the held-out image too
    save_tags({**tags, "2099_000004": tags["2099_000000"]}, str(root / "im_tags.pkl"))
    with pytest.raises(UserError, match=r"lists held-out images of val.txt \(1, e.g. 2099_000004\)"):
        prepare_data(cfg, 5, 33, 41, 0, logger)
