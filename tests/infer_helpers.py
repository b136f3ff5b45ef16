"""Shared set-up of the inference tests: an untrained but image-dependent SGAN checkpoint and
the config that runs infer_cam on a small synthetic tree; the same for make_seeds (stage 1)
and infer_seg (stage 3)."""
import os

import torch

from conftest import REPO
from lib.config import load_config
from lib.network.checkpoint import save_state_dict
from lib.network.classifier import VGG16Classifier
from lib.network.deeplab import DeepLabV2
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


CLS = os.path.join(REPO, "config", "cls_vgg16_321x321.yml")
SEG = os.path.join(REPO, "config", "seg_deeplabv2_vgg16.yml")


def write_classifier_checkpoint(path):
    """Save a fixed-seed baseline classifier (stage 1) of width WIDTH."""
    torch.manual_seed(0)
    save_state_dict(VGG16Classifier(width_mult=WIDTH).state_dict(), path)
    return path


def make_seeds_config(dataset_root, checkpoint, seed_dir, **overrides):
    """Stage 1's config, shrunk for a CPU test run of make_seeds into ``seed_dir``."""
    values = {"dataset_root": dataset_root, "checkpoint": checkpoint, "width_mult": WIDTH,
              "resize": 33, "num_worker": 0, "test_batch_size": 4, "device": "cpu",
              "seed_out_path": str(seed_dir)}
    values.update(overrides)
    return load_config(CLS, values)


def write_seg_checkpoint(path):
    """Save a fixed-seed DeepLabV2 (stage 3) of width WIDTH, He-initialised: its labels follow
    the image (a default initialisation gives one label everywhere)."""
    torch.manual_seed(0)
    save_state_dict(DeepLabV2(width_mult=WIDTH, init="kaiming").state_dict(), path)
    return path


def infer_seg_config(dataset_root, checkpoint, res_path, **overrides):
    """Stage 3's config, shrunk for a CPU test run of infer_seg (no CRF)."""
    values = {"dataset_root": dataset_root, "checkpoint": checkpoint, "width_mult": WIDTH,
              "test_scales": [33, 41], "seg_crf": False, "num_worker": 0, "device": "cpu",
              "res_path": str(res_path)}
    values.update(overrides)
    return load_config(SEG, values)
