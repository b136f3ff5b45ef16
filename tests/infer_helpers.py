"""Shared set-up of the seed-inference tests: an untrained but image-dependent SGAN checkpoint
and the config that runs infer_cam on a small synthetic tree."""
import os

import torch

from conftest import REPO
from lib.config import load_config
from lib.network.checkpoint import save_state_dict
from lib.network.sgan import SGAN

PAPER = os.path.join(REPO, "config", "sgan_vgg16_321x321.yml")
WIDTH = 0.125
RESIZE = 65  # the input side at inference; feature side 9


def write_checkpoint(path):
    """Save a fixed-seed SGAN whose class maps follow the image: the CAM branch is zeroed and
    the seed branch drawn large, so M = seg varies enough to give background, class and
    unlabeled seeds (a default-initialised net gives nearly flat maps)."""
    torch.manual_seed(0)
    model = SGAN(width_mult=WIDTH)
    with torch.no_grad():
        model.fc8.weight.zero_()
        torch.nn.init.normal_(model.fc9.weight, std=1.0)
        model.fc9.bias.zero_()
    save_state_dict(model.state_dict(), path)
    return path


def infer_config(dataset_root, checkpoint, res_path, **overrides):
    """The paper's config, shrunk for a CPU test run of infer_cam."""
    values = {"dataset_root": dataset_root, "checkpoint": checkpoint, "width_mult": WIDTH,
              "resize": RESIZE, "num_worker": 0, "test_batch_size": 3, "device": "cpu",
              "res_path": str(res_path)}
    values.update(overrides)
    return load_config(PAPER, values)
