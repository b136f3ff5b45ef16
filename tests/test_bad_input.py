"""Bad input and interrupted work: one clear line, a non-zero exit, nothing half-written."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from lib.dataset.check import check_files
from lib.dataset.synthetic import generate_dataset
from lib.errors import UserError
from lib.network.checkpoint import save_state_dict
from lib.network.sgan import SGAN

PAPER = os.path.join(REPO, "config", "sgan_vgg16_321x321.yml")


@pytest.fixture
def voc(tmp_path):
    """A fresh 6-image synthetic tree each test may damage."""
    root = tmp_path / "voc"
    generate_dataset(str(root), num_images=6, min_size=33, max_size=65, seed=5)
    return root


def _paths(root):
    names = sorted(p[:-4] for p in os.listdir(root / "JPEGImages"))
    image = lambda n: str(root / "JPEGImages" / (n + ".jpg"))  # noqa: E731
    maps = {"saliency map": lambda n: str(root / "sal" / "sal_snet" / (n + ".png")),
            "seed map": lambda n: str(root / "ini_seed" / "base_30_bg" / (n + ".png"))}
    return names, image, maps


def _one_line(stderr):
    return stderr.strip().count("\n") == 0 and "Traceback" not in stderr


def run_tool(*args):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)


def test_check_passes_on_a_good_tree(voc):
    names, image, maps = _paths(voc)
    check_files(names, image, maps)


def test_missing_files_are_counted_and_listed_together(voc):
    names, image, maps = _paths(voc)
    for name in names[:4]:
        os.remove(maps["saliency map"](name))
    os.remove(image(names[5]))
    with pytest.raises(UserError) as err:
        check_files(names, image, maps)
    message = str(err.value)
    assert "1 image missing" in message and names[5] in message
    assert "4 saliency maps missing" in message and ", ..." in message


def test_truncated_image_and_wrong_size_map_are_named(voc):
    names, image, maps = _paths(voc)
    data = open(image(names[0]), "rb").read()
    with open(image(names[0]), "wb") as f:
        f.write(data[: len(data) // 2])
    seed = maps["seed map"](names[1])
    shutil.copy(maps["seed map"](names[2]), seed)
    with pytest.raises(UserError) as err:
        check_files(names, image, maps)
    message = str(err.value)
    assert f"{image(names[0])}: truncated" in message
    assert f"{seed}: seed map is" in message and "but its image is" in message


GOLDEN_PRED = os.path.join(REPO, "tests", "data", "golden_pred")
GOLDEN_GT = os.path.join(REPO, "tests", "data", "golden_voc", "SegmentationClassAug")


def test_eval_strict_requires_every_listed_prediction(tmp_path):
    res = tmp_path / "res"
    shutil.copytree(GOLDEN_PRED, res)
    os.remove(res / "2099_000002.png")
    args = ("tools/eval_mIoU.py", "--res_path", str(res), "--gt_path", GOLDEN_GT)
    strict = run_tool(*args)
    assert strict.returncode == 2 and _one_line(strict.stderr)
    assert "1 of 4 predictions missing" in strict.stderr and "2099_000002.png" in strict.stderr
    lenient = run_tool(*args, "--no-strict")
    assert lenient.returncode == 0 and "3 images, 22 classes" in lenient.stdout
