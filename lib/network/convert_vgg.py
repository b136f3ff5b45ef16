"""ImageNet VGG16 weights in torchvision's layout -> our caffe layout (recipe 8).

torchvision's VGG16 (keys ``features.0.weight`` ...) sees RGB input scaled to 0..1 and
normalised by ``TORCHVISION_MEAN`` / ``TORCHVISION_STD``; our backbone (keys ``conv1_1.weight``
...) sees BGR input in 0..255 minus the BGR mean of recipe 2. The input change is linear,
so it folds into conv1_1: its input channels are reversed and scaled by 1 / (255 std), and the
mean shift moves into its bias. Both networks then compute the same features, exactly in the
interior; on the 1-pixel zero-padded border the folded shift is missing for the padded taps.
"""
import torch

from lib.network.backbone.vgg16 import CONV_NAMES
from lib.network.checkpoint import CheckpointError, read_state_dict, save_state_dict
from lib.voc import BGR_MEAN

TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
# Index of each conv of CONV_NAMES in torchvision's ``features`` (ReLUs and pools in between).
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
TORCHVISION_TO_CAFFE = dict(zip(TORCHVISION_CONV_INDICES, CONV_NAMES))
CAFFE_KEYS = tuple(f"{name}.{kind}" for name in CONV_NAMES for kind in ("weight", "bias"))

_BACKBONE_PREFIX = "backbone."


def detect_layout(state):
    """``"torchvision"`` (``features.0.weight``) or ``"caffe"`` (``conv1_1.weight``, also
    ``backbone.conv1_1.weight``); anything else, vgg16_bn included, is a CheckpointError."""
    if "features.1.running_mean" in state:
        raise CheckpointError("this is torchvision's batch-norm VGG16 (vgg16_bn); the backbone "
                              "is plain VGG16 (torchvision's vgg16)")
    if "features.0.weight" in state:
        return "torchvision"
    if "conv1_1.weight" in state or _BACKBONE_PREFIX + "conv1_1.weight" in state:
        return "caffe"
    raise CheckpointError("unknown checkpoint layout: expected torchvision VGG16 keys "
                          "('features.0.weight' ...) or caffe keys ('conv1_1.weight' ...)")


def _require(state, keys, layout):
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"{layout} VGG16 checkpoint lacks {len(missing)} conv keys: "
                              + ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else ""))


def fold_input_transform(weight, bias, caffe_mean=BGR_MEAN):
    """conv1_1 (weight, bias) for torchvision input -> the same conv for caffe input.

    torchvision input channel k (RGB) is (x_bgr[2 - k] + caffe_mean[2 - k]) / 255 / std_k
    - mean_k / std_k, so the weight is flipped along its input axis and divided by 255 std,
    and the constant part, summed over the kernel, goes into the bias. Computed in float64.
    """
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise CheckpointError(f"conv1_1 must take 3 input channels, got weight shape "
                              f"{tuple(weight.shape)}")
    w = weight.double()
    std = torch.tensor(TORCHVISION_STD, dtype=torch.float64)
    rgb_caffe_mean = torch.tensor(caffe_mean[::-1], dtype=torch.float64)
    offset = (rgb_caffe_mean / 255.0 - torch.tensor(TORCHVISION_MEAN, dtype=torch.float64)) / std
    new_weight = (w / (255.0 * std).view(1, 3, 1, 1)).flip(1)
    new_bias = bias.double() + (w * offset.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    return new_weight.to(weight.dtype).contiguous(), new_bias.to(bias.dtype)


def torchvision_to_caffe(state, caffe_mean=BGR_MEAN):
    """Rename ``features.<i>`` convs to ``conv<b>_<k>`` and fold the input change into conv1_1.

    Keys outside the 13 convs (the fully connected ``classifier.*``) are dropped.
    """
    keys = [f"features.{i}.{kind}" for i in TORCHVISION_CONV_INDICES for kind in ("weight", "bias")]
    _require(state, keys, "torchvision")
    caffe = {}
    for index, name in TORCHVISION_TO_CAFFE.items():
        caffe[f"{name}.weight"] = state[f"features.{index}.weight"].clone()
        caffe[f"{name}.bias"] = state[f"features.{index}.bias"].clone()
    caffe["conv1_1.weight"], caffe["conv1_1.bias"] = fold_input_transform(
        caffe["conv1_1.weight"], caffe["conv1_1.bias"], caffe_mean)
    return caffe


def caffe_conv_keys(state):
    """A caffe-layout state dict reduced to its 26 conv tensors (``backbone.`` prefix removed)."""
    state = {k[len(_BACKBONE_PREFIX):] if k.startswith(_BACKBONE_PREFIX) else k: v
             for k, v in state.items()}
    _require(state, CAFFE_KEYS, "caffe")
    return {k: state[k] for k in CAFFE_KEYS}


def convert_state(state):
    """Return (caffe-layout state dict, layout the input was in)."""
    layout = detect_layout(state)
    if layout == "torchvision":
        return torchvision_to_caffe(state), layout
    return caffe_conv_keys(state), layout


def run(in_path, out_path):
    """Convert ``in_path``, write ``out_path`` atomically; return the layout ``in_path`` was in."""
    state = read_state_dict(in_path)
    try:
        state, layout = convert_state(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{in_path}: {exc}") from None
    save_state_dict(state, out_path)
    return layout
