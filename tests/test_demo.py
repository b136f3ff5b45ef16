import os
import subprocess
import sys

import cv2

from conftest import REPO


def test_demo_runs_end_to_end_and_reuses_its_training(tmp_path):
    root = tmp_path / "voc"
    figure = tmp_path / "fig.png"
    cmd = [sys.executable, "tools/demo.py", "--cfg_file", "config/demo.yml",
           "--num_images", "8", "--min_size", "33", "--max_size", "61",
           "--figure", str(figure), f"dataset_root={root}", f"save_model_path={tmp_path}/m",
           f"res_path={tmp_path}/r", "resize=33", "new_size=33", "max_iter=2", "step_size=2",
           "batch_size=2", "num_worker=0", "width_mult=0.125"]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "initial seeds" in first.stdout and "SGAN seeds" in first.stdout
    assert "mean recall (mr)" in first.stdout and "aeroplane" in first.stdout
    assert len(os.listdir(root / "JPEGImages")) == 8
    seeds = os.listdir(tmp_path / "r" / "sgan_demo_seedcam_0.7")
    assert len([f for f in seeds if f.endswith(".png")]) == 8 and "record.yml" in seeds
    picture = cv2.imread(str(figure))
    assert picture is not None and picture.shape[1] > picture.shape[0] * 0.5
    assert (tmp_path / "m" / "sgan_demo" / "demo_results.txt").read_text().strip()

    again = subprocess.run(cmd + ["cam_thresh=0.5"], cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "trained with this config" in again.stderr  # an inference key alone: no retraining
    retrain = subprocess.run(cmd + ["max_iter=3"], cwd=REPO, capture_output=True, text=True)
    assert retrain.returncode == 0, retrain.stderr
    assert "trained with this config" not in retrain.stderr
