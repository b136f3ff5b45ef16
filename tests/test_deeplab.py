"""Stage 3's DeepLab-v2 (recipe 11.1, 11.6), its initial weights, and Caffe's SGD (recipe 11.4)."""
import math

import numpy as np
import pytest
import torch
import torchvision

from lib.errors import UserError
from lib.network.checkpoint import CheckpointError, read_state_dict, save_state_dict
from lib.network.classifier import VGG16Classifier
from lib.network.convert_vgg import torchvision_to_caffe
from lib.network.deeplab import VGG_FC_LAYERS, DeepLabV2
from lib.network.deeplab_init import (
    load_initial_weights,
    make_initial_weights,
    read_imagenet_weights,
    resnet101_init_from_imagenet,
    vgg16_init_from_imagenet,
)
from lib.optim import CaffeSGD, build_caffe_sgd, parameter_groups, step_lr
from lib.stage1.train_cls import export_vgg_init

VGG_CONVS = [f"conv{block}_{i}" for block, count in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
             for i in range(1, count + 1)]
FC8_KEYS = [f"fc8_{i}.{kind}" for i in range(1, 5) for kind in ("weight", "bias")]


def caffe_pooled_side(side, kernel, stride, pad):
    """Caffe's PoolingLayer output size: rounded up, but no window may start in the padding."""
    pooled = math.ceil((side + 2 * pad - kernel) / stride) + 1
    return pooled - 1 if (pooled - 1) * stride >= side + pad else pooled


def shapes_on_meta(model, side, layers):
    """Output shapes of ``layers`` for a side x side input, without computing anything."""
    shapes = {}
    hooks = [getattr(model, name).register_forward_hook(
        lambda module, args, out, name=name: shapes.__setitem__(name, tuple(out.shape)))
        for name in layers]
    z = model.to("meta").eval()(torch.zeros(2, 3, side, side, device="meta"))
    for hook in hooks:
        hook.remove()
    return tuple(z.shape), shapes


@pytest.fixture(scope="module")
def torchvision_vgg16():
    """A randomly initialised torchvision VGG16 state dict (no internet here for the real one)."""
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).state_dict()


def test_vgg16_output_side_follows_caffes_ceil_mode_pooling():
    chains = {321: (161, 81, 41), 288: (145, 73, 37)}
    for side in (321, 288, 385, 481, 353, 65, 34):
        z_shape, shapes = shapes_on_meta(DeepLabV2(), side, ("pool1", "pool2", "pool3", "pool5a"))
        expected = [side]
        for _ in range(3):
            expected.append(caffe_pooled_side(expected[-1], 3, 2, 1))
        assert [shapes[f"pool{i}"][-1] for i in (1, 2, 3)] == expected[1:]
        assert shapes["pool5a"] == (2, 512, expected[3], expected[3])
        assert z_shape == (2, 21, expected[3], expected[3])
        if side in chains:
            assert tuple(expected[1:]) == chains[side]


def test_vgg16_state_dict_keys_and_layers():
    model = DeepLabV2("vgg16")
    names = VGG_CONVS + [f"fc{layer}_{i}" for layer in (6, 7, 8) for i in range(1, 5)]
    assert list(model.state_dict()) == [f"{n}.{kind}" for n in names for kind in ("weight", "bias")]
    for name in ("conv5_1", "conv5_2", "conv5_3"):
        assert getattr(model, name).dilation == (2, 2) and getattr(model, name).padding == (2, 2)
    assert model.conv4_3.dilation == (1, 1)
    for i, rate in zip(range(1, 5), (6, 12, 18, 24)):
        fc6 = getattr(model, f"fc6_{i}")
        assert fc6.weight.shape == (1024, 512, 3, 3) and fc6.dilation == fc6.padding == (rate, rate)
        assert getattr(model, f"fc7_{i}").weight.shape == (1024, 1024, 1, 1)
        assert getattr(model, f"fc8_{i}").weight.shape == (21, 1024, 1, 1)
    with pytest.raises(UserError, match="resnet50"):
        DeepLabV2("resnet50")


def test_vgg16_forward_sums_four_branches_on_a_padding_counting_pool5a():
    torch.manual_seed(1)
    model = DeepLabV2("vgg16").eval()
    captured = {}
    model.pool5a.register_forward_hook(
        lambda module, args, out: captured.update(x=args[0].clone(), y=out.clone()))
    image = torch.randn(1, 3, 33, 33) * 50
    with torch.no_grad():
        z = model(image)
    x, y = captured["x"], captured["y"]
    assert x.shape == (1, 512, 5, 5) and (x >= 0).all() and x[..., :2, :2].sum() > 0
    # Corner: 4 real taps, divided by 9 (Caffe's AVE counts the padding); interior: 9 taps.
    np.testing.assert_allclose(y[..., 0, 0], x[..., :2, :2].sum(dim=(-2, -1)) / 9, rtol=1e-5)
    np.testing.assert_allclose(y[..., 2, 2], x[..., 1:4, 1:4].mean(dim=(-2, -1)), rtol=1e-5)
    relu = torch.nn.functional.relu
    with torch.no_grad():
        expected = sum(getattr(model, f"fc8_{i}")(relu(getattr(model, f"fc7_{i}")(
            relu(getattr(model, f"fc6_{i}")(y))))) for i in range(1, 5))
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-6)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(image), model(image))  # Dropout(0.5) in train mode


@pytest.mark.parametrize("backbone, layers", [
    ("vgg16", ["fc8_1", "fc8_2", "fc8_3", "fc8_4"]),
    ("resnet101", ["aspp.0", "aspp.1", "aspp.2", "aspp.3"])])
def test_new_layers_start_from_n_0_001(backbone, layers):
    torch.manual_seed(2)
    state = DeepLabV2(backbone).state_dict()
    weights = torch.cat([state[f"{layer}.weight"].flatten() for layer in layers]).double()
    # n >= 86016 samples: the std estimate has a relative standard error of 1 / sqrt(2n) < 0.25%,
    # so 1% is 4 standard errors; the mean is allowed 4 standard errors (0.01 / sqrt(n)) too.
    assert weights.std().item() == pytest.approx(0.01, rel=0.01)
    assert abs(weights.mean().item()) < 4 * 0.01 / math.sqrt(len(weights))
    assert all((state[f"{layer}.bias"] == 0).all() for layer in layers)


def test_vgg16_init_from_imagenet_decimates_fc6_fc7(torchvision_vgg16):
    tv = torchvision_vgg16
    state = vgg16_init_from_imagenet(tv)
    model_state = DeepLabV2("vgg16").state_dict()
    assert set(state) == set(model_state) - set(FC8_KEYS)
    assert all(state[k].shape == model_state[k].shape for k in state)
    for key, value in torchvision_to_caffe(tv).items():
        assert torch.equal(state[key], value)
    fc6, fc7 = tv["classifier.0.weight"], tv["classifier.3.weight"]
    for i in range(1, 5):
        # fc6 filter o, input channel c, tap (y, x) = fc6 row 4o, column c*49 + 3y*7 + 3x.
        for o, c, y, x in ((0, 0, 0, 0), (5, 7, 1, 2), (1023, 511, 2, 2), (300, 100, 2, 0)):
            assert state[f"fc6_{i}.weight"][o, c, y, x] == fc6[4 * o, c * 49 + 3 * y * 7 + 3 * x]
        assert torch.equal(state[f"fc6_{i}.bias"], tv["classifier.0.bias"][::4])
        assert torch.equal(state[f"fc7_{i}.weight"][:, :, 0, 0], fc7[::4, ::4])
        assert state[f"fc7_{i}.weight"][17, 1001, 0, 0] == fc7[68, 4004]
        assert torch.equal(state[f"fc7_{i}.bias"], tv["classifier.3.bias"][::4])
    broken = dict(tv, **{"classifier.0.weight": torch.full_like(fc6, float("nan"))})
    with pytest.raises(CheckpointError, match="fc6 is not finite"):
        vgg16_init_from_imagenet(broken)
    with pytest.raises(CheckpointError, match="lacks classifier.3.weight"):
        vgg16_init_from_imagenet({k: v for k, v in tv.items() if k != "classifier.3.weight"})


def test_make_vgg16_init_and_load_it(torchvision_vgg16, tmp_path):
    source, init = str(tmp_path / "vgg16-397923af.pth"), str(tmp_path / "init.pth")
    torch.save(torchvision_vgg16, source)
    make_initial_weights("vgg16", source, init)
    expected = vgg16_init_from_imagenet(torchvision_vgg16)
    for path in (init, source):  # our layout, or torchvision's converted on the fly
        model = DeepLabV2("vgg16")
        fc8 = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("fc8_")}
        load_initial_weights(model, path)
        loaded = model.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in expected.items())
        assert all(torch.equal(loaded[k], v) for k, v in fc8.items())  # fc8 keeps its N(0, 0.01)


def test_a_backbone_alone_loads_its_convs_and_fc6_fc7_keep_their_initialisation(tmp_path):
    stage1 = VGG16Classifier(width_mult=0.125, init="kaiming")
    vgg_init = str(tmp_path / "vgg_init.pth")
    export_vgg_init(stage1, vgg_init)  # conv1_1 .. conv5_3, as stage 1 writes it
    torch.manual_seed(0)
    model = DeepLabV2("vgg16", width_mult=0.125, init="kaiming")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert load_initial_weights(model, vgg_init) == VGG_FC_LAYERS
    loaded, backbone = model.state_dict(), stage1.backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in backbone.items())
    assert not any(torch.equal(loaded[k], before[k]) for k in backbone if k.endswith("weight"))
    rest = [k for k in loaded if k not in backbone]
    assert rest and all(k.startswith(("fc6_", "fc7_", "fc8_")) for k in rest)
    assert all(torch.equal(loaded[k], before[k]) for k in rest)  # their He / N(0, 0.01) start

    state = read_state_dict(vgg_init)
    fc6_1 = {k: v for k, v in model.state_dict().items() if k.startswith("fc6_1.")}
    for partial, missing in (({**state, **fc6_1}, "fc6_2"),  # some fc layers: no backbone alone
                             ({k: v for k, v in state.items() if "conv5_3" not in k}, "conv5_3")):
        path = str(tmp_path / "partial.pth")
        save_state_dict(partial, path)
        with pytest.raises(CheckpointError, match=rf"partial.pth does not fit.*missing keys: "
                                                  rf"{missing}"):
            load_initial_weights(DeepLabV2("vgg16", width_mult=0.125), path)


def test_imagenet_weight_sources_fail_in_one_line(tmp_path):
    for source, message in ((str(tmp_path / "none.pth"), "weights file not found"),
                            ("VGG16_Weights.NOPE", "unknown torchvision weights name"),
                            ("Nope_Weights.IMAGENET1K_V1", "unknown torchvision weights name")):
        with pytest.raises(CheckpointError, match=message) as error:
            read_imagenet_weights(source)
        assert "\n" not in str(error.value)


def test_resnet101_keys_sizes_and_dilation():
    assert shapes_on_meta(DeepLabV2("resnet101"), 65, ())[0] == (2, 21, 9, 9)
    assert shapes_on_meta(DeepLabV2("resnet101"), 321, ())[0] == (2, 21, 41, 41)
    model = DeepLabV2("resnet101")
    torchvision_keys = torchvision.models.resnet101(weights=None).state_dict()
    backbone = [f"backbone.{k}" for k in torchvision_keys
                if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    aspp = [f"aspp.{i}.{kind}" for i in range(4) for kind in ("weight", "bias")]
    assert list(model.state_dict()) == backbone + aspp
    assert model.backbone.layer3[1].conv2.dilation == (2, 2)
    assert model.backbone.layer4[1].conv2.dilation == (4, 4)
    for conv, rate in zip(model.aspp, (6, 12, 18, 24)):
        assert conv.weight.shape == (21, 2048, 3, 3)
        assert conv.dilation == conv.padding == (rate, rate)


def test_resnet101_batchnorm_stays_frozen_in_training(tmp_path):
    torch.manual_seed(3)
    torchvision_state = torchvision.models.resnet101(weights=None).state_dict()
    for key, value in torchvision_state.items():  # non-trivial statistics and affine
        if ("bn" in key or "downsample.1" in key) and value.is_floating_point():
            value.uniform_(0.5, 1.5)
    source, init = str(tmp_path / "resnet101.pth"), str(tmp_path / "init.pth")
    torch.save(torchvision_state, source)
    make_initial_weights("resnet101", source, init)
    model = DeepLabV2("resnet101")
    aspp = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("aspp.")}
    load_initial_weights(model, init)
    expected = resnet101_init_from_imagenet(torchvision_state)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in aspp.items())

    buffers = {k: v.clone() for k, v in model.named_buffers()}
    assert len(buffers) == 4 * 104  # weight, bias, mean, var of each of the 104 batch norms
    image = torch.randn(1, 3, 33, 33)
    with torch.no_grad():
        z_eval = model.eval()(image)
    optimizer = build_caffe_sgd(model.train(), lr=0.01, weight_decay=5e-4)
    z_train = model(image)
    assert torch.equal(z_train, z_eval)  # frozen statistics, no dropout
    z_train.square().sum().backward()
    optimizer.step()
    assert all(torch.equal(v, buffers[k]) for k, v in model.named_buffers())
    assert not torch.equal(model.backbone.conv1.weight, expected["backbone.conv1.weight"])


def group_names(model):
    names = {id(p): n for n, p in model.named_parameters()}
    return [sorted(names[id(p)] for p in group) for group in parameter_groups(model)]


def test_parameter_groups_and_multipliers():
    model = DeepLabV2("vgg16")
    old = sorted(VGG_CONVS + [f"fc{layer}_{i}" for layer in (6, 7) for i in range(1, 5)])
    new = [f"fc8_{i}" for i in range(1, 5)]
    assert group_names(model) == [[f"{n}.weight" for n in old], [f"{n}.bias" for n in old],
                                  [f"{n}.weight" for n in new], [f"{n}.bias" for n in new]]
    optimizer = build_caffe_sgd(model, lr=1e-3, weight_decay=5e-4)
    settings = [(g["lr"], g["weight_decay"], g["momentum"]) for g in optimizer.param_groups]
    assert settings == [(1e-3, 5e-4, 0.9), (2e-3, 0.0, 0.9), (1e-2, 5e-4, 0.9), (2e-2, 0.0, 0.9)]
    model.conv1_1.weight.requires_grad_(False)
    assert all("conv1_1.weight" not in group for group in group_names(model))

    resnet = DeepLabV2("resnet101")
    backbone_weights, backbone_biases, aspp_weights, aspp_biases = group_names(resnet)
    assert len(backbone_weights) == 104 and all(n.startswith("backbone.") for n in backbone_weights)
    assert backbone_biases == []  # ResNet convs have no bias; frozen BatchNorm has no parameters
    assert aspp_weights == [f"aspp.{i}.weight" for i in range(4)]
    assert aspp_biases == [f"aspp.{i}.bias" for i in range(4)]


def test_step_schedule():
    assert step_lr(1e-3, 0, 2000, 0.33) == 1e-3
    assert step_lr(1e-3, 1999, 2000, 0.33) == 1e-3
    assert step_lr(1e-3, 2000, 2000, 0.33) == pytest.approx(3.3e-4, rel=1e-12)
    assert step_lr(1e-3, 7999, 2000, 0.33) == pytest.approx(1e-3 * 0.33 ** 3, rel=1e-12)


def run_optimizer(make_optimizer, lrs):
    """Weights after steps at ``lrs`` on a fixed quadratic, two groups (decay, no decay)."""
    torch.manual_seed(4)
    target = torch.randn(2, 5, dtype=torch.float64)
    weights = [torch.randn(5, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    optimizer = make_optimizer([
        {"params": [weights[0]], "lr": 0.0, "lr_mult": 1, "weight_decay": 5e-4},
        {"params": [weights[1]], "lr": 0.0, "lr_mult": 20, "weight_decay": 0.0}])
    history = []
    for lr in lrs:
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        optimizer.zero_grad()
        ((torch.stack(weights) - target) ** 3).abs().sum().backward()
        optimizer.step()
        history.append(torch.stack(weights).detach().clone())
    return history


def test_caffe_sgd_keeps_the_lr_inside_the_velocity():
    lrs = [0.1, 0.1, 0.1, 0.033, 0.033, 0.01]
    ours = run_optimizer(lambda groups: CaffeSGD(groups, lr=0.1), lrs)

    torch.manual_seed(4)
    target = torch.randn(2, 5, dtype=torch.float64)
    w = torch.stack([torch.randn(5, dtype=torch.float64) for _ in range(2)])
    v = torch.zeros_like(w)
    decay = torch.tensor([[5e-4], [0.0]], dtype=torch.float64)
    mult = torch.tensor([[1.0], [20.0]], dtype=torch.float64)
    for step, lr in enumerate(lrs):
        g = 3 * (w - target) ** 2 * torch.sign(w - target)
        v = 0.9 * v + lr * mult * (g + decay * w)
        w = w - v
        np.testing.assert_allclose(ours[step], w, rtol=1e-12, atol=1e-15)

    torch_sgd = run_optimizer(lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9), lrs)
    for step in range(3):  # constant lr: the same updates (up to rounding)
        np.testing.assert_allclose(torch_sgd[step], ours[step], rtol=1e-12)
    assert not np.allclose(torch_sgd[3], ours[3], rtol=1e-6)  # the lr dropped: they part


def test_an_offline_download_says_how_to_go_on_in_one_line(monkeypatch):
    from urllib.error import URLError

    from torchvision.models import VGG16_Weights

    def offline(self, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(type(VGG16_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(CheckpointError) as error:
        read_imagenet_weights("VGG16_Weights.IMAGENET1K_V1")
    message = str(error.value)
    assert "\n" not in message and "name resolution" in message
    assert VGG16_Weights.IMAGENET1K_V1.url in message
    assert "--source FILE" in message and "seg_pretrain= init=kaiming" in message


def test_a_missing_seg_pretrain_says_how_to_make_it_or_train_from_scratch(tmp_path):
    from lib.config import ConfigError, load_config
    from lib.paths import pretrain_path

    cfg = load_config(None, {"seg_pretrain": str(tmp_path / "vgg16_deeplab_init.pth")})
    with pytest.raises(ConfigError) as error:
        pretrain_path(cfg, "seg_pretrain")
    message = str(error.value)
    assert "\n" not in message and "config key 'seg_pretrain': file not found" in message
    assert "tools/stage3/make_init.py" in message and "seg_pretrain= init=kaiming" in message
