"""DeepLab-v2 with ASPP, output stride 8: stage 3's segmentation network (SPEC 11.1, 11.6).

State-dict keys:
- ``vgg16`` (SPEC 11.1, the Caffe layer names at top level): ``conv1_1`` .. ``conv5_3``,
  ``fc6_1`` .. ``fc6_4``, ``fc7_1`` .. ``fc7_4``, ``fc8_1`` .. ``fc8_4`` (``.weight``/``.bias``).
  Input: the caffe layout (BGR, 0..255, mean subtracted).
- ``resnet101`` (SPEC 11.6): ``backbone.<torchvision key>`` (``backbone.conv1.weight``,
  ``backbone.bn1.running_mean``, ``backbone.layer1.0.conv1.weight`` ...: torchvision's
  ResNet-101 keys without ``fc``, behind ``backbone.``) and ``aspp.0`` .. ``aspp.3``
  (``.weight``/``.bias``, rates 6, 12, 18, 24). Input: RGB / 255 normalised by ImageNet's mean
  and std.
The model never normalises its input: the data pipeline does. ``new_layers`` names the layers
that start from N(0, 0.01^2) and learn at x10 / x20 (lib.optim.parameter_groups).
"""
import os
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.errors import UserError, one_line
from lib.network.backbone import he_init_
from lib.network.backbone.vgg16 import CONV_NAMES, VGG16
from lib.network.checkpoint import CheckpointError, fit_state_dict, read_state_dict, save_state_dict
from lib.network.convert_vgg import torchvision_to_caffe
from lib.optim import is_new_parameter
from lib.voc import NUM_CLASSES

BACKBONES = ("vgg16", "resnet101")
ASPP_RATES = (6, 12, 18, 24)
BRANCHES = tuple(range(1, len(ASPP_RATES) + 1))  # the _i of fc6_i, fc7_i, fc8_i
VGG_FC_LAYERS = tuple(f"fc{n}_{i}" for n in (6, 7) for i in BRANCHES)  # not in a backbone
NEW_LAYER_STD = 0.01
DROPOUT = 0.5
VGG_FC_CHANNELS = 1024  # DeepLab's decimated fc6 / fc7
VGG_CONV5_DILATION = 2
# The pools after each VGG16 conv: pool1-3 halve the side, pool4, pool5, pool5a keep it.
VGG_POOLS_AFTER = {"conv1_2": ("pool1",), "conv2_2": ("pool2",), "conv3_3": ("pool3",),
                   "conv4_3": ("pool4",), "conv5_3": ("pool5", "pool5a")}
# torchvision's ResNet modules before its average pool: the trunk under ``backbone.``.
RESNET_TRUNK = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
RESNET_CHANNELS = 2048
# torchvision's VGG16 fully connected layers and their shapes; fc6 reads a 7 x 7 x 512 pool5.
FC6_KERNEL = 7
TORCHVISION_FC6 = ("classifier.0", (4096, 512 * FC6_KERNEL * FC6_KERNEL))
TORCHVISION_FC7 = ("classifier.3", (4096, 4096))
# DeepLab's decimation: every 4th fc filter (4096 -> 1024), every 3rd fc6 tap (7 x 7 -> 3 x 3).
FC_STEP = 4
FC6_TAP_STEP = 3


class DeepLabV2(nn.Module):
    """DeepLab-v2, ``backbone`` "vgg16" or "resnet101"; ``forward(image)`` -> z (N x C x h x w)."""

    def __init__(self, backbone="vgg16", num_classes=NUM_CLASSES, width_mult=1.0, init="pytorch"):
        super().__init__()
        if backbone not in BACKBONES:
            raise UserError(f"unknown DeepLab backbone '{backbone}' (expected one of "
                            f"{', '.join(BACKBONES)})")
        self.backbone_name = backbone
        if backbone == "vgg16":
            self._build_vgg16(num_classes, width_mult)
            self.new_layers = tuple(f"fc8_{i}" for i in BRANCHES)
        elif width_mult != 1:
            raise UserError(f"config key 'width_mult' narrows the vgg16 backbone only, got "
                            f"{width_mult} with resnet101")
        else:
            self._build_resnet101(num_classes)
            self.new_layers = ("aspp",)
        if init == "kaiming":
            he_init_(self)
        for name in self.new_layers:
            for module in getattr(self, name).modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.normal_(module.weight, 0.0, NEW_LAYER_STD)
                    nn.init.zeros_(module.bias)

    def _build_vgg16(self, num_classes, width_mult):
        """SPEC 11.1: the 13 convs (conv5 dilated), Caffe's pools, four fc6-fc7-fc8 branches.
        ``width_mult`` < 1 narrows every layer (a CPU demo aid; the published network is 1)."""
        trunk = VGG16(conv5_dilation=VGG_CONV5_DILATION, width_mult=width_mult)
        fc_channels = max(16, int(round(VGG_FC_CHANNELS * width_mult)))
        for name in CONV_NAMES:
            self.add_module(name, getattr(trunk, name))
        for name in ("pool1", "pool2", "pool3"):
            self.add_module(name, nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True))
        self.pool4 = nn.MaxPool2d(3, stride=1, padding=1)
        self.pool5 = nn.MaxPool2d(3, stride=1, padding=1)
        self.pool5a = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
        for i, rate in zip(BRANCHES, ASPP_RATES):
            self.add_module(f"fc6_{i}", nn.Conv2d(trunk.out_channels, fc_channels, 3,
                                                  padding=rate, dilation=rate))
        for i in BRANCHES:
            self.add_module(f"fc7_{i}", nn.Conv2d(fc_channels, fc_channels, 1))
        for i in BRANCHES:
            self.add_module(f"fc8_{i}", nn.Conv2d(fc_channels, num_classes, 1))
        self.dropout = nn.Dropout(DROPOUT)

    def _build_resnet101(self, num_classes):
        """SPEC 11.6: torchvision's ResNet-101, layers 3-4 dilated, BatchNorm frozen; ASPP."""
        import torchvision
        from torchvision.ops import FrozenBatchNorm2d

        resnet = torchvision.models.resnet101(weights=None, norm_layer=FrozenBatchNorm2d,
                                              replace_stride_with_dilation=[False, True, True])
        self.backbone = nn.Sequential(OrderedDict((name, getattr(resnet, name))
                                                  for name in RESNET_TRUNK))
        self.aspp = nn.ModuleList(nn.Conv2d(RESNET_CHANNELS, num_classes, 3, padding=rate,
                                            dilation=rate) for rate in ASPP_RATES)

    def vgg16_features(self, image):
        """pool5a: the input of the four branches (N x 512 x h x w)."""
        x = image
        for name in CONV_NAMES:
            x = F.relu(getattr(self, name)(x), inplace=True)
            for pool in VGG_POOLS_AFTER.get(name, ()):
                x = getattr(self, pool)(x)
        return x

    def forward(self, image):
        """z = the sum of the four branches' class scores (N x classes x h x w), h = ceil(S / 8)."""
        if self.backbone_name == "resnet101":
            features = self.backbone(image)
            return sum(conv(features) for conv in self.aspp)
        features = self.vgg16_features(image)
        z = 0
        for i in BRANCHES:
            x = self.dropout(F.relu(getattr(self, f"fc6_{i}")(features), inplace=True))
            x = self.dropout(F.relu(getattr(self, f"fc7_{i}")(x), inplace=True))
            z = z + getattr(self, f"fc8_{i}")(x)
        return z


def _fc_layer(state, layer):
    """(weight, bias) of torchvision VGG16's fully connected ``layer`` = (prefix, weight shape)."""
    prefix, shape = layer
    keys = (f"{prefix}.weight", f"{prefix}.bias")
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"torchvision VGG16 state dict lacks {', '.join(missing)}")
    weight, bias = (state[k] for k in keys)
    if tuple(weight.shape) != shape or tuple(bias.shape) != shape[:1]:
        raise CheckpointError(f"{prefix} has shape {tuple(weight.shape)} (bias "
                              f"{tuple(bias.shape)}), VGG16's is {shape}")
    return weight, bias


def _require_finite(layers):
    """The decimated fc layers must be finite (torchvision's IMAGENET1K_FEATURES has NaNs there)."""
    for name, tensors in layers.items():
        if not all(torch.isfinite(t).all() for t in tensors):
            raise CheckpointError(f"{name} is not finite: these weights have no classifier "
                                  "(VGG16_Weights.IMAGENET1K_FEATURES?); use IMAGENET1K_V1")


def vgg16_init_from_imagenet(state_dict):
    """A torchvision VGG16 state dict -> the SPEC 11.1 state dict without fc8 (DeepLab decimation).

    Convs in stage 1's caffe layout (convert_vgg.torchvision_to_caffe); fc6_i = fc6 viewed as
    4096 x 512 x 7 x 7, every 4th filter, every 3rd tap (1024 x 512 x 3 x 3); fc7_i = every 4th
    row and column of fc7 (1024 x 1024 x 1 x 1); biases every 4th. The four branches share
    the same tensors (loading copies them into four independent layers).
    """
    state = torchvision_to_caffe(state_dict)
    fc6_weight, fc6_bias = _fc_layer(state_dict, TORCHVISION_FC6)
    fc7_weight, fc7_bias = _fc_layer(state_dict, TORCHVISION_FC7)
    fc6 = fc6_weight.view(len(fc6_bias), -1, FC6_KERNEL, FC6_KERNEL)
    fc6 = fc6[::FC_STEP, :, ::FC6_TAP_STEP, ::FC6_TAP_STEP].contiguous()
    fc7 = fc7_weight[::FC_STEP, ::FC_STEP, None, None].contiguous()
    decimated = {"fc6": (fc6, fc6_bias[::FC_STEP].contiguous()),
                 "fc7": (fc7, fc7_bias[::FC_STEP].contiguous())}
    _require_finite(decimated)
    for layer, (weight, bias) in decimated.items():
        for i in BRANCHES:
            state[f"{layer}_{i}.weight"] = weight
            state[f"{layer}_{i}.bias"] = bias
    return state


def resnet101_init_from_imagenet(state_dict):
    """A torchvision ResNet-101 state dict -> the resnet101 DeepLabV2 state dict without ASPP.

    Trunk keys gain the ``backbone.`` prefix; ``fc.*`` and BatchNorm's ``num_batches_tracked``
    (frozen BatchNorm has none) are dropped.
    """
    if "conv1.weight" not in state_dict:
        raise CheckpointError("not a torchvision ResNet state dict (no conv1.weight)")
    return {f"backbone.{key}": value for key, value in state_dict.items()
            if key.split(".", 1)[0] in RESNET_TRUNK and not key.endswith("num_batches_tracked")}


IMAGENET_CONVERSIONS = {"vgg16": vgg16_init_from_imagenet,
                        "resnet101": resnet101_init_from_imagenet}
# A key that only torchvision's ImageNet state dict of each backbone has.
TORCHVISION_MARKERS = {"vgg16": "features.0.weight", "resnet101": "conv1.weight"}


def backbone_alone_layers(model, state):
    """The layers that keep the network's own initialisation because ``state`` is a VGG16
    backbone alone (stage 1's ``vgg_init.pth``: no key of fc6_i / fc7_i): those eight; else
    (). A file with some of them is no backbone alone: its missing keys stay an error."""
    if model.backbone_name != "vgg16" or any(k.split(".", 1)[0] in VGG_FC_LAYERS for k in state):
        return ()
    return VGG_FC_LAYERS


def load_initial_weights(model, path):
    """Load ``seg_pretrain`` into a DeepLabV2; all but its new layers (fc8 / ASPP) must be
    there, or, for vgg16, all but fc6 / fc7 as well (a backbone alone). Returns the layers
    besides the new ones that kept their initialisation: VGG_FC_LAYERS for a backbone alone,
    else ().

    The file holds our layout (written by make_initial_weights, or a Caffe
    model converted to these keys), torchvision's ImageNet state dict, converted here, or
    stage 1's ``vgg_init.pth`` (conv1_1 .. conv5_3; fc6 / fc7 then keep the start ``init``
    gave them, as the new layers keep theirs). New layers the file has load too (as Caffe
    copies every layer it finds by name); the others keep their N(0, 0.01^2) start. Other keys,
    and a ``module.`` prefix, are ignored.
    """
    state = read_state_dict(path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if TORCHVISION_MARKERS[model.backbone_name] in state:
        try:
            state = IMAGENET_CONVERSIONS[model.backbone_name](state)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    kept = backbone_alone_layers(model, state)
    own = {k: v for k, v in model.state_dict().items()
           if is_new_parameter(model, k) or k.split(".", 1)[0] in kept}
    fit_state_dict(model, {**own, **state}, path, strict_unexpected=False)
    return kept


def read_imagenet_weights(source):
    """A state dict from a local file, or from a torchvision weights name such as
    ``VGG16_Weights.IMAGENET1K_V1`` (downloaded into torchvision's cache; needs the internet)."""
    if os.path.isfile(source):
        return read_state_dict(source)
    if "_Weights." not in source:
        raise CheckpointError(f"weights file not found (nor a torchvision weights name): {source}")
    from torchvision.models import get_weight

    try:
        weights = get_weight(source)
    except (KeyError, ValueError):
        raise CheckpointError(f"unknown torchvision weights name: {source}") from None
    try:
        return weights.get_state_dict(progress=False)
    except Exception as exc:  # noqa: BLE001 (any download failure: no network, bad hash ...)
        raise CheckpointError(f"cannot download {source} ({weights.url}): "
                              f"{one_line(exc)}") from None


def make_initial_weights(backbone, source, out_path):
    """Write the initial weights (all but the new layers) of a ``backbone`` DeepLabV2 from
    ImageNet ``source``: a local file (``vgg16-397923af.pth``, ``resnet101-63fe2227.pth``) or a
    torchvision weights name (``VGG16_Weights.IMAGENET1K_V1``, ``ResNet101_Weights.IMAGENET1K_V1``)."""
    state = read_imagenet_weights(source)
    try:
        state = IMAGENET_CONVERSIONS[backbone](state)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    save_state_dict(state, out_path)


def deeplab_from_config(cfg):
    """The DeepLabV2 a configuration describes (``seg_backbone``, ``width_mult``, ``init``)."""
    return DeepLabV2(cfg.seg_backbone, width_mult=cfg.width_mult, init=cfg.init)
