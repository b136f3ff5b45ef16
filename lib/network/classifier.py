"""The stage-1 baseline: VGG16 + SGAN's classification branch, without attention or seed branch.

Fine-tuned for the dataset's multi-label classification, its backbone becomes ``vgg_init.pth``
and its CAMs the initial seeds. Parameter names (``backbone.*``, ``fc6_CAM.*``, ``fc8.weight``)
are SGAN's, so the heads read the same way in both networks.
"""
import torch.nn as nn
import torch.nn.functional as F

from lib.dataset.description import VOC12, describe
from lib.network.backbone import build_backbone, he_init_


class VGG16Classifier(nn.Module):
    """backbone -> fc6_CAM (3x3, ReLU, Dropout2d 0.5) -> fc8 (1x1, no bias) = CAM; score = its mean.

    ``conv5_dilation``, ``width_mult``, ``init`` and ``num_classes`` mean what they mean for SGAN.
    """

    def __init__(self, backbone_name="vgg16", conv5_dilation=1, width_mult=1.0, init="pytorch",
                 num_classes=VOC12.num_fg_classes):
        super().__init__()
        self.backbone = build_backbone(backbone_name, conv5_dilation=conv5_dilation,
                                       width_mult=width_mult)
        hidden = max(16, int(round(1024 * width_mult)))
        self.fc6_CAM = nn.Conv2d(self.backbone.out_channels, hidden, 3, padding=1)
        self.dropout = nn.Dropout2d(0.5)
        self.fc8 = nn.Conv2d(hidden, num_classes, 1, bias=False)
        if init == "kaiming":
            he_init_(self)

    def forward_cam(self, image):
        """The class activation maps (batch x C x h x w)."""
        x = self.backbone(image)
        return self.fc8(self.dropout(F.relu(self.fc6_CAM(x), inplace=True)))

    def forward(self, image):
        """The class scores: global average of the CAM (batch x C)."""
        return self.forward_cam(image).mean(dim=(2, 3))


# The config keys that choose the classifier's network (as SGAN_KEYS for SGAN).
CLASSIFIER_KEYS = ("backbone", "conv5_dilation", "width_mult", "dataset_name")


def classifier_from_config(cfg):
    """The baseline classifier a configuration describes, with its dataset's C classes."""
    return VGG16Classifier(cfg.backbone, conv5_dilation=cfg.conv5_dilation,
                           width_mult=cfg.width_mult, init=cfg.init,
                           num_classes=describe(cfg).num_fg_classes)
