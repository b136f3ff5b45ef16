"""DeepLab-v2 with ASPP, output stride 8: stage 3's segmentation network (recipe 11.1, 11.6).

State-dict keys:
- ``vgg16`` (recipe 11.1, the Caffe layer names at top level): ``conv1_1`` .. ``conv5_3``,
  ``fc6_1`` .. ``fc6_4``, ``fc7_1`` .. ``fc7_4``, ``fc8_1`` .. ``fc8_4`` (``.weight``/``.bias``).
  Input: the caffe layout (BGR, 0..255, mean subtracted).
- ``resnet101`` (recipe 11.6): ``backbone.<torchvision key>`` (``backbone.conv1.weight``,
  ``backbone.bn1.running_mean``, ``backbone.layer1.0.conv1.weight`` ...: torchvision's
  ResNet-101 keys without ``fc``, behind ``backbone.``) and ``aspp.0`` .. ``aspp.3``
  (``.weight``/``.bias``, rates 6, 12, 18, 24). Input: RGB / 255 normalised by ImageNet's mean
  and std.
The model never normalises its input: the data pipeline does. ``new_layers`` names the layers
that start from N(0, 0.01^2) and learn at x10 / x20 (lib.optim.parameter_groups). Its initial
weights (ImageNet's, converted; ``seg_pretrain``) are lib.network.deeplab_init's.
"""
from collections import OrderedDict

import torch.nn as nn
import torch.nn.functional as F

from lib.dataset.description import VOC12, describe
from lib.errors import UserError
from lib.network.backbone import he_init_
from lib.network.backbone.vgg16 import CONV_NAMES, VGG16

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


class DeepLabV2(nn.Module):
    """DeepLab-v2, ``backbone`` "vgg16" or "resnet101"; ``forward(image)`` -> z (N x
    ``num_classes`` x h x w): background and the C foreground classes (VOC 21, COCO 81)."""

    def __init__(self, backbone="vgg16", num_classes=VOC12.num_classes, width_mult=1.0,
                 init="pytorch"):
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
        """recipe 11.1: the 13 convs (conv5 dilated), Caffe's pools, four fc6-fc7-fc8 branches.
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
        """recipe 11.6: torchvision's ResNet-101, layers 3-4 dilated, BatchNorm frozen; ASPP."""
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


def deeplab_from_config(cfg):
    """The DeepLabV2 a configuration describes (``seg_backbone``, ``width_mult``, ``init``),
    with the C + 1 classes of its ``dataset_name``."""
    return DeepLabV2(cfg.seg_backbone, num_classes=describe(cfg).num_classes,
                     width_mult=cfg.width_mult, init=cfg.init)


def __getattr__(name):
    """The public interface names the VGG16 conversion here; it lives in
    lib.network.deeplab_init (imported on first use, as the network does not need it)."""
    if name == "vgg16_init_from_imagenet":
        from lib.network.deeplab_init import vgg16_init_from_imagenet
        return vgg16_init_from_imagenet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
