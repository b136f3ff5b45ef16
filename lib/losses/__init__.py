"""The losses of every stage: classification (the published soft margin, and the balanced
sigmoid cross-entropy for COCO) and SGAN (stages 1-2, recipe 4), and the stage-3 segmentation
loss through the training-time dense CRF (recipe 11.3)."""
from lib.losses.seg import seg_loss
from lib.losses.sgan import balanced_bce, classification_loss, sgan_loss, soft_margin

__all__ = ["balanced_bce", "classification_loss", "seg_loss", "sgan_loss", "soft_margin"]
