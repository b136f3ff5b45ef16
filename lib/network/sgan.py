"""SGAN: VGG16 + saliency-guided self-attention + classification and seed branches.

recipe 3. State-dict keys match the published ``model_iter_<N>.pth`` (section 8).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.dataset.description import VOC12, describe
from lib.network.backbone import build_backbone, he_init_

_AFFINITY_EPS = 1e-5


def saliency_affinity(sal):
    """The fg-pair mask F = s s^T and the bg-averaging matrix B = (1-s)(1-s)^T / (sum(1-s) + eps).

    ``sal``: (batch, h, w) or (batch, N) 0/1 mask (float or bool). Returns two float32
    (batch, N, N) tensors on ``sal``'s device.
    """
    s = sal.reshape(sal.shape[0], -1).float()
    bg = 1.0 - s
    fg_pairs = s.unsqueeze(2) * s.unsqueeze(1)
    bg_pairs = bg.unsqueeze(2) * bg.unsqueeze(1)
    bg_average = bg_pairs / (bg.sum(dim=1).view(-1, 1, 1) + _AFFINITY_EPS)
    return fg_pairs, bg_average


def saliency_guided_attention(x, query, key, sal, gamma):
    """Return ``gamma * (A V) + x`` with the attention A of recipe 3 (V = x).

    Salient positions attend only to salient positions (energies shifted by their row
    minimum, then normalised); background positions take the mean of all background
    features. ``sal`` None means no saliency (F = 1, B = 0). The attention itself is
    computed in float32 whatever the input precision.
    """
    with torch.autocast(x.device.type, enabled=False):
        return _attend(x, query, key, sal, gamma)


def _attend(x, query, key, sal, gamma):
    n, c, h, w = x.shape
    query = query.flatten(2).float()
    key = key.flatten(2).float()
    energy = torch.bmm(query.transpose(1, 2), key) / math.sqrt(query.shape[1])
    if sal is None:
        fg_pairs, bg_average = torch.ones_like(energy), None
    else:
        fg_pairs, bg_average = saliency_affinity(sal.to(x.device))
    energy = energy * fg_pairs
    shifted = (energy - energy.min(dim=2, keepdim=True)[0]) * fg_pairs
    attention = shifted / (shifted.sum(dim=2, keepdim=True) + _AFFINITY_EPS)
    if bg_average is not None:
        attention = attention + bg_average
    context = torch.bmm(x.flatten(2).float(), attention.transpose(1, 2)).view(n, c, h, w)
    return (gamma * context).to(x.dtype) + x


class SGAN(nn.Module):
    """SGAN as published: ``forward`` for training, ``forward_cam`` for seed inference.

    ``conv5_dilation``, ``width_mult``, ``init`` and ``num_classes`` (C, the foreground classes
    of ``fc8`` and ``fc9``: VOC 20, COCO 80) are this repository's additions; their defaults
    give the published network.
    """

    def __init__(self, backbone_name="vgg16", use_sal=True, conv5_dilation=1, width_mult=1.0,
                 init="pytorch", num_classes=VOC12.num_fg_classes):
        super().__init__()
        self.backbone = build_backbone(backbone_name, conv5_dilation=conv5_dilation,
                                       width_mult=width_mult)
        channels = self.backbone.out_channels
        hidden = max(16, int(round(1024 * width_mult)))
        key_channels = max(8, int(round(256 * width_mult)))
        self.use_sal = use_sal
        self.gamma = nn.Parameter(torch.zeros(1))
        # the published order of creation (backbone, f_key, f_query, fc6_CAM, fc8, fc9), so a
        # seeded default initialisation draws the published initial weights (recipe 3)
        self.f_key = nn.Conv2d(channels, key_channels, 1)
        self.f_query = nn.Conv2d(channels, key_channels, 1)
        self.fc6_CAM = nn.Conv2d(channels, hidden, 3, padding=1)
        self.dropout = nn.Dropout2d(0.5)
        self.fc8 = nn.Conv2d(hidden, num_classes, 1, bias=False)
        self.fc9 = nn.Conv2d(channels, num_classes, 1)
        if init == "kaiming":
            he_init_(self)

    def attend(self, x, sal):
        """Backbone features ``x`` refined by saliency-guided attention (batch x C x h x w)."""
        return saliency_guided_attention(x, self.f_query(x), self.f_key(x),
                                         sal if self.use_sal else None, self.gamma)

    def fuse(self, image, sal):
        """The attention output of an image: what the heads read."""
        return self.attend(self.backbone(image), sal)

    def _heads(self, fuse):
        seg = self.fc9(fuse)
        cam = self.fc8(self.dropout(F.relu(self.fc6_CAM(fuse), inplace=True)))
        return seg, cam

    def forward(self, image, sal):
        """Return (score, seg): score = global average of the CAM (batch x C)."""
        seg, cam = self._heads(self.fuse(image, sal))
        return cam.mean(dim=(2, 3)), seg

    def forward_cam(self, image, sal):
        """Return (conv, seg, cam): conv = the backbone output X, before attention, as
        published (recipe 9); seg and cam are read from the attention output."""
        conv = self.backbone(image)
        seg, cam = self._heads(self.attend(conv, sal))
        return conv, seg, cam


# The config keys that choose SGAN's network: a checkpoint's run records them (lib/training);
# dataset_name gives its class count.
SGAN_KEYS = ("backbone", "use_sal", "conv5_dilation", "width_mult", "dataset_name")


def sgan_from_config(cfg):
    """The SGAN a configuration describes (paper defaults unless the config says otherwise),
    with the C classes of its ``dataset_name``."""
    return SGAN(cfg.backbone, use_sal=cfg.use_sal, conv5_dilation=cfg.conv5_dilation,
                width_mult=cfg.width_mult, init=cfg.init,
                num_classes=describe(cfg).num_fg_classes)
