"""make demo's tool at a tiny size: both tables, both figures, held-out scoring, caching."""
import os
import subprocess
import sys

import cv2

from conftest import REPO


def test_demo_runs_end_to_end_and_reuses_its_training(tmp_path):
    root = tmp_path / "voc"
    figures = {kind: tmp_path / f"{kind}.png" for kind in ("seeds", "segmentation")}
    cmd = [sys.executable, "tools/demo.py", "--cfg_file", "config/demo.yml",
           "--num_images", "10", "--min_size", "33", "--max_size", "61",
           "--seed_figure", str(figures["seeds"]),
           "--segmentation_figure", str(figures["segmentation"]),
           f"dataset_root={root}", f"save_model_path={tmp_path}/m",
           f"res_path={tmp_path}/r", "resize=33", "max_iter=2", "step_size=2",
           "batch_size=2", "num_worker=0", "width_mult=0.125"]
    for setting in ("max_iter=2", "step_size=2", "batch_size=2", "num_worker=0",
                    "width_mult=0.125", "seg_resize=41", "crop_size=33", "test_scales=[33]",
                    "lr_step=1"):
        cmd += ["--seg_set", setting]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "initial seeds" in first.stdout and "SGAN seeds" in first.stdout
    assert "mean recall (mr)" in first.stdout and "aeroplane" in first.stdout
    assert "Seeds of the 8 training images" in first.stdout
    assert "Segmentation of the 2 held-out val images" in first.stdout
    assert len(os.listdir(root / "JPEGImages")) == 10
    val = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    for kind in ("initial", "sgan"):  # both networks labelled the held-out images only
        labels = tmp_path / "r" / f"seg_demo_{kind}_val"
        assert sorted(f[:-4] for f in os.listdir(labels) if f.endswith(".png")) == sorted(val)
    for figure in figures.values():
        picture = cv2.imread(str(figure))
        assert picture is not None and picture.shape[1] > picture.shape[0] * 0.5
    assert "Segmentation of" in (tmp_path / "m" / "sgan_demo" / "demo_results.txt").read_text()
    assert not list((tmp_path / "m").glob("*.console.txt"))  # side by side, finished cleanly

    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("trained with this config") == 3  # SGAN and both networks
    assert again.stdout == first.stdout
    retrain = subprocess.run(cmd + ["max_iter=3"], cwd=REPO, capture_output=True, text=True)
    assert retrain.returncode == 0, retrain.stderr
    # SGAN retrains, so do the network on its new seeds; the one on the initial seeds does not
    assert retrain.stderr.count("trained with this config") == 1
    assert "seg_demo_initial/model_iter_2.pth trained with this config" in retrain.stderr
