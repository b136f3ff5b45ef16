"""Stage 3's initial weights (recipe 11.1, 11.6): torchvision's ImageNet VGG16 or ResNet-101 (a
local file or a download) converted to DeepLab-v2's layout, and loading ``seg_pretrain``.

VGG16 by DeepLab's decimation of the fully connected layers, convs in stage 1's caffe layout;
ResNet-101 by prefixing its trunk. The new layers (fc8 / ASPP) are not in these weights: they
keep the network's N(0, 0.01^2) start.
"""
import os

import torch

from lib.errors import one_line
from lib.network.checkpoint import CheckpointError, fit_state_dict, read_state_dict, save_state_dict
from lib.network.convert_vgg import torchvision_to_caffe
from lib.network.deeplab import BRANCHES, RESNET_TRUNK, VGG_FC_LAYERS
from lib.optim import is_new_parameter

# torchvision's VGG16 fully connected layers and their shapes; fc6 reads a 7 x 7 x 512 pool5.
FC6_KERNEL = 7
TORCHVISION_FC6 = ("classifier.0", (4096, 512 * FC6_KERNEL * FC6_KERNEL))
TORCHVISION_FC7 = ("classifier.3", (4096, 4096))
# DeepLab's decimation: every 4th fc filter (4096 -> 1024), every 3rd fc6 tap (7 x 7 -> 3 x 3).
FC_STEP = 4
FC6_TAP_STEP = 3


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
    """A torchvision VGG16 state dict -> the recipe 11.1 state dict without fc8 (DeepLab
    decimation).

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
        raise CheckpointError(f"cannot download {source} ({one_line(exc)}): fetch {weights.url} "
                              f"on a machine with internet and give the file with --source "
                              f"FILE, or train from scratch with seg_pretrain= init=kaiming"
                              ) from None


def make_initial_weights(backbone, source, out_path):
    """Write the initial weights (all but the new layers) of a ``backbone`` DeepLabV2 from
    ImageNet ``source``: a local file (``vgg16-397923af.pth``, ``resnet101-63fe2227.pth``) or a
    torchvision weights name (``VGG16_Weights.IMAGENET1K_V1``,
    ``ResNet101_Weights.IMAGENET1K_V1``)."""
    state = read_imagenet_weights(source)
    try:
        state = IMAGENET_CONVERSIONS[backbone](state)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    save_state_dict(state, out_path)
