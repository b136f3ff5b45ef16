"""Backbones, built by name, and the initialisation for training from scratch."""
import torch.nn as nn

from lib.network.backbone.vgg16 import VGG16


def build_backbone(name, **kwargs):
    """Return the backbone called ``name`` (only "vgg16" is published)."""
    if name == "vgg16":
        return VGG16(**kwargs)
    raise ValueError(f"unknown backbone '{name}'")


def he_init_(model):
    """He (kaiming) initialisation of every conv, zero biases: for training from scratch."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
