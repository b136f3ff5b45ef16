"""The three used-by commands, end to end, with the paper's config file: only dataset_root,
sizes, iterations and output folders are overridden."""
import json
import os
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from conftest import REPO
from lib.dataset.tags import load_tags
from lib.network.checkpoint import save_state_dict
from lib.network.sgan import SGAN
from lib.tooling.synthetic import generate_dataset

PAPER = "config/sgan_vgg16_321x321.yml"


def run_tool(*args, cwd=REPO):
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_train_infer_evaluate_with_the_paper_config(tmp_path):
    synth_voc = str(tmp_path / "voc")
    generate_dataset(synth_voc, num_images=6, min_size=33, max_size=65, seed=11)
    torch.manual_seed(0)  # full-width backbone weights, in the working folder (pretrain's rule)
    save_state_dict(SGAN().backbone.state_dict(), str(tmp_path / "vgg_init.pth"))
    common = [f"dataset_root={synth_voc}", "resize=33", "new_size=33", "max_iter=2",
              "num_worker=0", f"save_model_path={tmp_path}/model", f"res_path={tmp_path}/result"]
    run_tool(os.path.join(REPO, "tools/stage2/train_sgan.py"), "--cfg_file",
             os.path.join(REPO, PAPER), *common, cwd=tmp_path)
    assert os.path.exists(tmp_path / "model" / "sgan_vgg16_321x321_snet" / "model_iter_2.pth")

    inferred = run_tool("tools/stage2/infer_cam.py", "--cfg_file", PAPER, *common)
    assert "done in" in inferred.stderr and "\r" not in inferred.stderr  # no bar off a terminal
    seeds = tmp_path / "result" / "sgan_vgg16_321x321_snet_seedcam_0.25"
    names = sorted(load_tags(os.path.join(synth_voc, "im_tags.pkl")))  # the training images
    assert sorted(f[:-4] for f in os.listdir(seeds) if f.endswith(".png")) == names
    for name in names:
        seed = Image.open(seeds / (name + ".png"))
        image = Image.open(os.path.join(synth_voc, "JPEGImages", name + ".jpg"))
        assert seed.mode == "L" and seed.size == image.size
        assert np.asarray(seed).max() <= 21

    out = tmp_path / "scores.json"
    result = run_tool("tools/eval_mIoU.py", "--res_path", str(seeds), "--num_classes", "22",
                      "--cfg_file", PAPER, f"dataset_root={synth_voc}", "--json", str(out))
    assert "mIoU" in result.stdout and "aeroplane" in result.stdout
    scores = json.loads(out.read_text())
    assert set(scores) == {"mIoU", "mp", "mr", "per_class"} and len(scores["per_class"]) == 21
    assert 0 <= scores["mp"] <= 1 and 0 <= scores["mr"] <= 1
