"""Backbones, built by name."""
from lib.network.backbone.vgg16 import VGG16


def build_backbone(name, **kwargs):
    """Return the backbone called ``name`` (only "vgg16" is published)."""
    if name == "vgg16":
        return VGG16(**kwargs)
    raise ValueError(f"unknown backbone '{name}'")
