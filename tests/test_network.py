import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import DATA
from lib.network.backbone import build_backbone
from lib.network.backbone.vgg16 import CONV_NAMES
from lib.network.checkpoint import CheckpointError, load_backbone, load_checkpoint, save_state_dict
from lib.network.sgan import SGAN, saliency_affinity, saliency_guided_attention
from lib.optim import parameter_groups

PUBLISHED_KEYS = (["gamma"] + [f"backbone.{n}.{p}" for n in CONV_NAMES for p in ("weight", "bias")]
                  + ["f_key.weight", "f_key.bias", "f_query.weight", "f_query.bias",
                     "fc6_CAM.weight", "fc6_CAM.bias", "fc8.weight", "fc9.weight", "fc9.bias"])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SGAN("vgg16", width_mult=0.125).eval()


def test_state_dict_keys_are_the_published_ones():
    assert set(SGAN().state_dict()) == set(PUBLISHED_KEYS)


def test_full_width_shapes():
    shapes = {k: tuple(v.shape) for k, v in SGAN().state_dict().items()}
    assert shapes["backbone.conv1_1.weight"] == (64, 3, 3, 3)
    assert shapes["backbone.conv5_3.weight"] == (512, 512, 3, 3)
    assert shapes["f_query.weight"] == (256, 512, 1, 1)
    assert shapes["fc6_CAM.weight"] == (1024, 512, 3, 3)
    assert shapes["fc8.weight"] == (20, 1024, 1, 1)
    assert shapes["fc9.weight"] == (20, 512, 1, 1)


def test_saliency_affinity_against_direct_construction():
    torch.manual_seed(1)
    sal = (torch.rand(2, 5, 4) > 0.5)
    fg_pairs, bg_average = saliency_affinity(sal)
    s = sal.reshape(2, -1).float().numpy()
    for b in range(2):
        n = s.shape[1]
        expect_f = np.array([[s[b, i] * s[b, j] for j in range(n)] for i in range(n)])
        total_bg = (1 - s[b]).sum()
        expect_b = np.array([[(1 - s[b, i]) * (1 - s[b, j]) / (total_bg + 1e-5)
                              for j in range(n)] for i in range(n)])
        np.testing.assert_array_equal(fg_pairs[b].numpy(), expect_f)
        np.testing.assert_allclose(bg_average[b].numpy(), expect_b, rtol=1e-6)


def test_attention_matches_the_published_output():
    g = np.load(os.path.join(DATA, "attention.npz"))
    t = {k: torch.from_numpy(np.asarray(g[k])) for k in g.files}
    fg_pairs, bg_average = saliency_affinity(t["sal"])
    np.testing.assert_array_equal(fg_pairs.numpy(), g["F"])
    np.testing.assert_array_equal(bg_average.numpy(), g["B"])
    x = t["x"]
    fuse = saliency_guided_attention(
        x, F.conv2d(x, t["f_query_weight"], t["f_query_bias"]),
        F.conv2d(x, t["f_key_weight"], t["f_key_bias"]), t["sal"], t["gamma"])
    np.testing.assert_allclose(fuse.numpy(), g["fuse"], rtol=1e-5, atol=1e-5)


def _attention_matrix(sal):
    """Recover A from the attention: with gamma = 1 and V = identity features, A V = A."""
    n, h, w = sal.shape
    eye = torch.eye(h * w).view(1, h * w, h, w).expand(n, -1, -1, -1)
    q, k = torch.randn(n, 4, h, w), torch.randn(n, 4, h, w)
    out = saliency_guided_attention(eye, q, k, sal, torch.ones(1)) - eye
    return out.flatten(2).transpose(1, 2)  # row i = attention of position i


def test_attention_rows_sum_to_one():
    torch.manual_seed(2)
    sal = torch.zeros(1, 6, 6)
    sal[0, 1:4, 1:5] = 1
    a = _attention_matrix(sal)[0]
    s = sal.flatten()
    rows = a.sum(dim=1)
    np.testing.assert_allclose(rows[s == 1].numpy(), 1, atol=1e-4)  # salient, energies differ
    np.testing.assert_allclose(rows[s == 0].numpy(), 1, atol=1e-4)  # background averages
    assert torch.all(a[s == 1][:, s == 0] == 0)  # salient rows see only salient columns
    np.testing.assert_allclose(a[s == 0][:, s == 0].numpy(), 1 / float((s == 0).sum()), rtol=1e-4)


def test_forward_cam_returns_the_backbone_output_and_the_heads_of_the_attention():
    """conv is X before attention (recipe 9), with gamma != 0 so that it differs from fuse."""
    torch.manual_seed(3)
    model = SGAN(width_mult=0.125).eval()
    with torch.no_grad():
        model.gamma.fill_(0.5)
        image = torch.randn(2, 3, 33, 41)
        sal = torch.rand(2, 5, 6) > 0.5
        conv, seg, cam = model.forward_cam(image, sal)
        x = model.backbone(image)
        fuse = model.fuse(image, sal)
        seg_of_fuse = model.fc9(fuse)
        _, seg_of_forward = model(image, sal)
    np.testing.assert_array_equal(conv.numpy(), x.numpy())
    assert not torch.allclose(fuse, x, atol=1e-3)
    np.testing.assert_array_equal(seg.numpy(), seg_of_fuse.numpy())
    np.testing.assert_array_equal(seg.numpy(), seg_of_forward.numpy())
    assert seg.shape == cam.shape == (2, 20, 5, 6)


def test_seeded_construction_gives_the_published_initial_weights():
    """Layers are created in the published order (backbone, f_key, f_query, fc6_CAM, fc8,
    fc9): the same seed gives the same default initialisation as layers built in that order."""
    torch.manual_seed(11)
    model = SGAN(width_mult=0.125)
    torch.manual_seed(11)
    backbone = build_backbone("vgg16", width_mult=0.125)
    c = backbone.out_channels
    published = {"f_key": torch.nn.Conv2d(c, 32, 1), "f_query": torch.nn.Conv2d(c, 32, 1),
                 "fc6_CAM": torch.nn.Conv2d(c, 128, 3, padding=1),
                 "fc8": torch.nn.Conv2d(128, 20, 1, bias=False), "fc9": torch.nn.Conv2d(c, 20, 1)}
    for key, value in backbone.state_dict().items():
        assert torch.equal(model.state_dict()["backbone." + key], value), key
    for name, layer in published.items():
        for key, value in layer.state_dict().items():
            assert torch.equal(model.state_dict()[f"{name}.{key}"], value), f"{name}.{key}"
    assert list(model.state_dict()) == PUBLISHED_KEYS


def test_forward_shapes_and_score_is_cam_average(model):
    image = torch.randn(2, 3, 65, 65)
    sal = torch.rand(2, 9, 9) > 0.5
    with torch.no_grad():
        score, seg = model(image, sal)
        _, seg2, cam = model.forward_cam(image, sal)
    assert score.shape == (2, 20) and seg.shape == (2, 20, 9, 9)
    np.testing.assert_allclose(score.numpy(), cam.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(seg.numpy(), seg2.numpy(), rtol=1e-5, atol=1e-6)


def test_feature_side_is_ceil_s_over_8():
    backbone = SGAN(width_mult=0.125).backbone
    for side in (33, 64, 65, 97):
        assert backbone(torch.zeros(1, 3, side, side)).shape[-1] == -(-side // 8)


def test_parameter_groups():
    m = SGAN(width_mult=0.125)
    names = {id(p): n for n, p in m.named_parameters()}
    groups = [[names[id(p)] for p in g] for g in parameter_groups(m)]
    assert all(n.startswith("backbone.") and n.endswith(".weight") for n in groups[0])
    assert all(n.startswith("backbone.") and n.endswith(".bias") for n in groups[1])
    assert sorted(groups[2]) == ["f_key.weight", "f_query.weight", "fc6_CAM.weight",
                                 "fc8.weight", "fc9.weight", "gamma"]
    assert sorted(groups[3]) == ["f_key.bias", "f_query.bias", "fc6_CAM.bias", "fc9.bias"]
    assert sum(map(len, groups)) == len(names)


def test_checkpoint_round_trip_and_prefixes(tmp_path, model):
    state = model.state_dict()
    path = str(tmp_path / "m.pth")
    save_state_dict(state, path)
    other = SGAN("vgg16", width_mult=0.125)
    load_checkpoint(other, path)
    for k, v in other.state_dict().items():
        assert torch.equal(v, state[k]), k
    wrapped = {"module." + k: v for k, v in state.items()}
    save_state_dict(wrapped, path)
    load_checkpoint(SGAN("vgg16", width_mult=0.125), path)
    bare = {k.replace("backbone.", ""): v for k, v in state.items()}
    save_state_dict(bare, path)
    load_checkpoint(SGAN("vgg16", width_mult=0.125), path)


def test_backbone_init_ignores_extra_keys_and_lists_missing(tmp_path, model):
    backbone = {k: v for k, v in model.backbone.state_dict().items()}
    path = str(tmp_path / "vgg_init.pth")
    save_state_dict({**backbone, "fc7.weight": torch.zeros(3)}, path)
    fresh = SGAN("vgg16", width_mult=0.125)
    load_backbone(fresh, path)
    assert torch.equal(fresh.backbone.conv3_2.weight, model.backbone.conv3_2.weight)
    del backbone["conv5_3.bias"], backbone["conv1_1.weight"]
    save_state_dict(backbone, path)
    with pytest.raises(CheckpointError, match="missing keys: conv1_1.weight, conv5_3.bias"):
        load_backbone(fresh, path)


def test_shape_mismatch_is_reported(tmp_path, model):
    path = str(tmp_path / "m.pth")
    save_state_dict(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="shape differences: backbone.conv1_1.weight"):
        load_checkpoint(SGAN("vgg16", width_mult=0.25), path)
