import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO, listed_run_files
from infer_helpers import make_seeds_config, write_classifier_checkpoint
from lib.config import ConfigError, load_config
from lib.dataset.tags import load_tags
from lib.dataset.voc12_cls import VOC12ClsDataset
from lib.dataset.voc12_sgan import VOC12ClsSalDataset
from lib.errors import UserError
from lib.network.backbone.vgg16 import CONV_NAMES
from lib.network.checkpoint import load_backbone, read_state_dict
from lib.network.classifier import VGG16Classifier
from lib.network.sgan import SGAN
from lib.optim import parameter_groups
from lib.records import read_record
from lib.seeds.inference import tags_of
from lib.seeds.threshold import seeds_from_cams
from lib.stage1 import make_seeds
from lib.tooling.synthetic import generate_dataset

CLS = os.path.join(REPO, "config", "cls_vgg16_321x321.yml")
PAPER = os.path.join(REPO, "config", "sgan_vgg16_321x321.yml")
BACKBONE_KEYS = {f"{name}.{kind}" for name in CONV_NAMES for kind in ("weight", "bias")}


def run_tool(script, cfg_file, *overrides):
    cmd = [sys.executable, script, "--cfg_file", cfg_file, *overrides]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def test_classifier_has_sgans_classification_branch_and_groups():
    model = VGG16Classifier(width_mult=0.125)
    sgan_keys = set(SGAN(width_mult=0.125).state_dict())
    keys = set(model.state_dict())
    assert keys == {k for k in sgan_keys if k.startswith(("backbone.", "fc6_CAM.", "fc8."))}
    backbone_w, backbone_b, new_w, new_b = parameter_groups(model)
    assert (len(backbone_w), len(backbone_b), len(new_w), len(new_b)) == (13, 13, 2, 1)
    model.eval()
    image = torch.randn(2, 3, 33, 33)
    cam = model.forward_cam(image)
    assert cam.shape == (2, 20, 5, 5)
    assert torch.allclose(model(image), cam.mean(dim=(2, 3)))


def test_cls_dataset_preprocesses_like_the_sgan_dataset_without_seeds(synth_voc, tmp_path):
    cls = VOC12ClsDataset(synth_voc, "im_tags.pkl", max_iters=30, new_size=65, flip_seed=7)
    sal = VOC12ClsSalDataset(synth_voc, "im_tags.pkl", max_iters=30, new_size=65, flip_seed=7)
    assert len(cls) == len(sal)
    for index in (0, 5, 13, 29):
        a, b = cls[index], sal[index]
        assert a["name"] == b["name"]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
        assert torch.equal(a["size"], b["size"])
    # images and tags are all it reads
    root = tmp_path / "voc"
    shutil.copytree(os.path.join(synth_voc, "JPEGImages"), root / "JPEGImages")
    shutil.copy(os.path.join(synth_voc, "im_tags.pkl"), root / "im_tags.pkl")
    assert VOC12ClsDataset(str(root), "im_tags.pkl", new_size=33)[3]["image"].shape == (3, 33, 33)


def seed_masks(cams, labels, bg, fg_thresh):
    """The h x w masks make_seeds paints for a batch: seeds_from_cams of each image's tags at
    the threshold of its output settings (lib/seeds/writer.py)."""
    cfg = load_config(CLS, {"fg_thresh": fg_thresh})
    settings = make_seeds.output_settings(cfg)
    assert settings.cam_thresh == fg_thresh and settings.seed_mode == "threshold"
    return np.stack([seeds_from_cams(cam, tags_of(label), background, settings.cam_thresh)
                     for cam, label, background in zip(cams, labels, bg)])


def test_seed_painting_is_seeds_from_cams_at_fg_thresh():
    h = 4
    cams = np.zeros((2, 20, h, h), np.float32)
    cams[0, 0] = [[10, 9, 2, 0], [8, 2.8, 2, 0], [0, 0, 0, 0], [0, 0, 0, 0]]  # class 1
    cams[0, 14, 1:, 1:] = 5.0                                                  # class 15
    cams[0, 6] = 100.0                                                         # untagged class 7
    cams[1, 3, 1, :] = cams[1, 3, 3, 0] = 1.0                                  # class 4 (boat)
    labels = np.zeros((2, 20), np.float32)
    labels[0, [0, 14]] = 1
    labels[1, 3] = 1
    bg = np.zeros((2, h, h), bool)
    bg[0, :, 3] = True
    bg[1, :2, :] = True
    masks = seed_masks(cams, labels, bg, fg_thresh=0.30)
    # class 1 claims > 3.0 (2.8 is out at 0.30, in at 0.25); larger regions paint first:
    # class 15 (9 px), then bg (4 px) over it, then class 1 (3 px). Image 1: bg (8 px), then
    # boat (5 px) over it; the boat/train rule sends boat pixels that are background to 0.
    expected0 = np.array([[1, 1, 21, 0],
                          [1, 15, 15, 0],
                          [21, 15, 15, 0],
                          [21, 15, 15, 0]], np.uint8)
    expected1 = np.array([[0, 0, 0, 0],
                          [0, 0, 0, 0],
                          [21, 21, 21, 21],
                          [4, 21, 21, 21]], np.uint8)
    assert masks.dtype == np.uint8
    np.testing.assert_array_equal(masks[0], expected0)
    np.testing.assert_array_equal(masks[1], expected1)
    for j, tags in enumerate(([1, 15], [4])):
        np.testing.assert_array_equal(masks[j], seeds_from_cams(cams[j], tags, bg[j], 0.30))
    assert seed_masks(cams, labels, bg, fg_thresh=0.25)[0, 1, 1] == 1


def test_a_bad_fg_thresh_is_rejected_with_the_config():
    with pytest.raises(ConfigError, match="'fg_thresh' must be in"):
        load_config(CLS, {"fg_thresh": 1.5})


def test_initial_seeds_record_fg_thresh_and_log_beside_their_folder(synth_voc, tmp_path):
    checkpoint = write_classifier_checkpoint(str(tmp_path / "cls.pth"))
    seeds = make_seeds.run(make_seeds_config(synth_voc, checkpoint, tmp_path / "ini"))
    assert read_record(seeds)["fg_thresh"] == 0.30 and "cam_thresh" not in read_record(seeds)
    assert "done in" in open(seeds + ".log").read().splitlines()[-1]
    with pytest.raises(UserError, match=r"fg_thresh 0.3 -> 0.5.*overwrite=true"):
        make_seeds.run(make_seeds_config(synth_voc, checkpoint, tmp_path / "ini", fg_thresh=0.5))


def test_stage1_from_public_inputs_to_sgan_training(tmp_path):
    root = tmp_path / "voc"
    generate_dataset(str(root), num_images=6, min_size=33, max_size=65, seed=5)
    shutil.rmtree(root / "ini_seed")  # stage 1 must not need the published seeds
    tags = load_tags(str(root / "im_tags.pkl"))
    names = sorted(tags)  # the 5 training images
    models = tmp_path / "model"
    common = [f"dataset_root={root}", f"save_model_path={models}", "cfg_name=tiny_cls",
              "width_mult=0.125", "num_worker=0", "seed_subdir=ours_30_bg", "max_iter=4"]

    result = run_tool("tools/stage1/train_cls.py", CLS, *common, "pretrain=", "resize=33",
                      "step_size=2", "batch_size=3", "display_step=2")
    assert result.returncode == 0, result.stderr
    run_dir = models / "tiny_cls"
    assert listed_run_files(run_dir) == ["config.yml", "metrics.csv", "model_iter_2.pth",
                                         "model_iter_4.pth", "train.log", "train_state.pth",
                                         "vgg_init.pth"]
    assert "iter 4/4 loss" in (run_dir / "train.log").read_text()
    last = read_state_dict(str(run_dir / "model_iter_4.pth"))
    assert set(last) == set(VGG16Classifier(width_mult=0.125).state_dict())
    vgg_init = read_state_dict(str(run_dir / "vgg_init.pth"))
    assert set(vgg_init) == BACKBONE_KEYS and len(vgg_init) == 26
    for key, value in vgg_init.items():
        assert torch.equal(value, last["backbone." + key])
    first = read_state_dict(str(run_dir / "model_iter_2.pth"))
    assert not torch.equal(last["backbone.conv1_1.weight"], first["backbone.conv1_1.weight"])
    sgan = SGAN(width_mult=0.125)
    load_backbone(sgan, str(run_dir / "vgg_init.pth"))
    assert torch.equal(sgan.backbone.conv5_3.bias, vgg_init["conv5_3.bias"])

    # width_mult left out: the network is the one the run recorded in its config.yml
    result = run_tool("tools/stage1/make_seeds.py", CLS, *[c for c in common if "width" not in c],
                      "resize=33", "test_batch_size=4")
    assert result.returncode == 0, result.stderr
    assert "the network as its run trained it: width_mult 0.125" in result.stderr
    seed_dir = root / "ini_seed" / "ours_30_bg"
    summary = result.stderr.strip().splitlines()[-1]
    assert f"5 images written, 0 skipped (already there), 0 failed, in {seed_dir}" in summary
    assert sorted(f for f in os.listdir(seed_dir) if f.endswith(".png")) == [n + ".png" for n in names]
    for name in names:
        seed = cv2.imread(str(seed_dir / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        image = cv2.imread(str(root / "JPEGImages" / f"{name}.jpg"))
        assert seed.dtype == np.uint8 and seed.shape == image.shape[:2]
        assert set(np.unique(seed)) <= {0, 21} | set(tags[name].tolist())
        assert 0 in seed  # the synthetic saliency always leaves some background

    # stage 2 on stage 1's outputs: the paper's config with our backbone and seeds
    vgg_init_path = run_dir / "vgg_init.pth"
    result = run_tool("tools/stage2/train_sgan.py", PAPER, f"dataset_root={root}",
                      f"save_model_path={models}", "cfg_name=tiny_sgan", "width_mult=0.125",
                      "num_worker=0", "seed_subdir=ours_30_bg", f"pretrain={vgg_init_path}",
                      "resize=33", "max_iter=2", "batch_size=3")
    assert result.returncode == 0, result.stderr
    log = (models / "tiny_sgan" / "train.log").read_text()
    assert f"weights from {vgg_init_path}" in log


def test_uint8_classifier_items_normalise_to_the_float_items(synth_voc):
    from lib.normalisation import normalise_on_device
    floats = VOC12ClsDataset(synth_voc, "im_tags.pkl", new_size=33)
    raw = VOC12ClsDataset(synth_voc, "im_tags.pkl", new_size=33, normalise=False)
    for i in range(len(floats)):
        image = normalise_on_device(raw[i]["image"][None], floats.mean, floats.std)[0]
        assert torch.equal(image, floats[i]["image"]), i
