import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import REPO
from lib.network.backbone.vgg16 import VGG16
from lib.network.checkpoint import CheckpointError, load_backbone, read_state_dict
from lib.network.convert_vgg import (
    CAFFE_KEYS,
    TORCHVISION_CONV_INDICES,
    TORCHVISION_MEAN,
    TORCHVISION_STD,
    convert_state,
    torchvision_to_caffe,
)
from lib.network.sgan import SGAN
from lib.normalisation import normalise_image

WIDTH = 0.125


def torchvision_state(seed=0):
    """A random VGG16 (narrowed) in torchvision's layout, with its fully connected keys."""
    torch.manual_seed(seed)
    ours = VGG16(width_mult=WIDTH).state_dict()
    names = [k[:-len(".weight")] for k in ours if k.endswith(".weight")]
    state = {}
    for index, name in zip(TORCHVISION_CONV_INDICES, names):
        state[f"features.{index}.weight"] = torch.randn_like(ours[f"{name}.weight"]) * 0.2
        state[f"features.{index}.bias"] = torch.randn_like(ours[f"{name}.bias"]) * 0.5
    state["classifier.0.weight"] = torch.randn(16, 8)
    state["classifier.0.bias"] = torch.randn(16)
    return state


def test_conversion_keeps_conv1_2_features_away_from_the_border():
    tv = torchvision_state()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(23, 29, 3), dtype=np.uint8)

    x_tv = torch.from_numpy((rgb / 255.0 - np.array(TORCHVISION_MEAN)) / np.array(TORCHVISION_STD))
    x_tv = x_tv.permute(2, 0, 1).unsqueeze(0).float()
    ref = F.relu(F.conv2d(x_tv, tv["features.0.weight"], tv["features.0.bias"], padding=1))
    ref = F.relu(F.conv2d(ref, tv["features.2.weight"], tv["features.2.bias"], padding=1))

    backbone = VGG16(width_mult=WIDTH)
    backbone.load_state_dict(torchvision_to_caffe(tv))
    x_caffe = torch.from_numpy(normalise_image(rgb[:, :, ::-1])).unsqueeze(0)
    with torch.no_grad():
        ours = F.relu(backbone.conv1_2(F.relu(backbone.conv1_1(x_caffe))))

    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))
    scale = ref[inner].abs().max()
    assert scale > 0
    assert torch.allclose(ours[inner], ref[inner], rtol=0, atol=1e-4 * scale)
    # the folded mean shift is missing on the zero-padded taps: the border differs (expected)
    assert not torch.allclose(ours, ref, rtol=0, atol=1e-4 * scale)


def test_conversion_drops_the_classifier_and_renames_every_conv():
    tv = torchvision_state()
    caffe, layout = convert_state(tv)
    assert layout == "torchvision"
    assert list(caffe) == list(CAFFE_KEYS)
    assert torch.equal(caffe["conv5_3.weight"], tv["features.28.weight"])
    assert torch.equal(caffe["conv2_1.bias"], tv["features.5.bias"])
    assert torch.equal(caffe["conv1_1.weight"][:, 0], tv["features.0.weight"][:, 2] / (255 * 0.225))


def test_caffe_layout_passes_through_with_conv_keys_only():
    state = {f"backbone.{k}": v for k, v in VGG16(width_mult=WIDTH).state_dict().items()}
    state["fc8.weight"] = torch.randn(20, 16, 1, 1)
    caffe, layout = convert_state(dict(state))
    assert layout == "caffe" and list(caffe) == list(CAFFE_KEYS)
    for key in CAFFE_KEYS:
        assert torch.equal(caffe[key], state["backbone." + key])


def test_incomplete_torchvision_checkpoint_names_the_missing_keys():
    tv = torchvision_state()
    del tv["features.28.bias"]
    with pytest.raises(CheckpointError, match="features.28.bias"):
        convert_state(tv)


def test_batch_norm_vgg16_is_refused_by_name():
    state = torchvision_state()
    state["features.1.running_mean"] = torch.zeros(8)
    with pytest.raises(CheckpointError, match="vgg16_bn"):
        convert_state(state)


def test_cli_converts_and_the_result_loads_into_sgan(tmp_path):
    src, dst = tmp_path / "vgg16_tv.pth", tmp_path / "vgg16_caffe.pth"
    torch.save(torchvision_state(), src)
    result = subprocess.run([sys.executable, "tools/convert_vgg.py", str(src), str(dst)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "torchvision" in result.stdout
    assert list(read_state_dict(str(dst))) == list(CAFFE_KEYS)
    model = SGAN(width_mult=WIDTH)
    load_backbone(model, str(dst))
    assert torch.equal(model.backbone.conv3_2.weight, torchvision_state()["features.12.weight"])


def test_cli_rejects_an_unknown_layout_in_one_line(tmp_path):
    src = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 64)}, src)
    result = subprocess.run([sys.executable, "tools/convert_vgg.py", str(src),
                             str(tmp_path / "out.pth")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown checkpoint layout" in result.stderr and str(src) in result.stderr
    assert not (tmp_path / "out.pth").exists()
