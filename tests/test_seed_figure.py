"""tools/visualize.py: comparison grids of seed folders next to the image and ground truth."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO
from lib.errors import UserError
from lib.pictures.seed_figure import first_names, save_seed_figure
from lib.voc import VOC_PALETTE


def run_cli(*args):
    return subprocess.run([sys.executable, "tools/visualize.py", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_grid_has_a_row_per_image_a_column_per_folder_and_a_legend(synth_voc, tmp_path):
    seeds = os.path.join(synth_voc, "ini_seed", "base_30_bg")
    gt = os.path.join(synth_voc, "SegmentationClassAug")
    names = first_names([seeds, gt], 3)
    assert names == sorted(os.path.splitext(f)[0] for f in os.listdir(seeds))[:3]
    path = tmp_path / "grid.png"
    legend = save_seed_figure(names, [seeds, gt], synth_voc, path, titles=["initial", "gt"])
    image = cv2.imread(str(path))[:, :, ::-1]
    # four columns of 2-inch panels at 100 dpi, three rows plus title and legend strips
    assert image.shape[1] == 800 and image.shape[0] > 600
    values = [value for value, _ in legend]
    assert values[0] == 0 and 255 in values and legend[0][1] == "background"
    for value in values:
        if value not in (0, 255):  # class colours are drawn in the panels and the legend
            colour = VOC_PALETTE[value]
            assert (np.abs(image.astype(int) - colour).sum(axis=2) == 0).any(), value


def test_cli_with_first_and_errors(synth_voc, tmp_path):
    seeds = os.path.join(synth_voc, "ini_seed", "base_30_bg")
    out = tmp_path / "fig.png"
    proc = run_cli("--dataset_root", synth_voc, "--seeds", seeds, "--first", 2, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert cv2.imread(str(out)).shape[1] == 600 and "2 images" in proc.stdout
    proc = run_cli("--dataset_root", synth_voc, "--seeds", seeds, "--titles", "a", "b",
                   "--names", "2099_000000", "--out", out)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "2 titles for 1 seed folders" in proc.stderr


def test_missing_and_mis_sized_files_are_user_errors(synth_voc, tmp_path):
    seeds = os.path.join(synth_voc, "ini_seed", "base_30_bg")
    with pytest.raises(UserError, match="missing.jpg"):
        save_seed_figure(["missing"], [seeds], synth_voc, tmp_path / "x.png")
    small = tmp_path / "small"
    small.mkdir()
    cv2.imwrite(str(small / "2099_000000.png"), np.zeros((5, 5), np.uint8))
    with pytest.raises(UserError, match="size 5x5 differs"):
        save_seed_figure(["2099_000000"], [str(small)], synth_voc, tmp_path / "x.png")
    with pytest.raises(UserError, match="no image has seeds"):
        first_names([seeds, str(tmp_path)], 2)
    assert not (tmp_path / "x.png").exists()
