"""The losses of every stage: classification and SGAN (stages 1-2, SPEC 4), and the stage-3
segmentation loss through the training-time dense CRF (SPEC 11.3)."""
from lib.losses.seg import seg_loss
from lib.losses.sgan import classification_loss, sgan_loss

__all__ = ["classification_loss", "seg_loss", "sgan_loss"]
