"""The losses of every stage: classification and SGAN (stages 1-2, SPEC 4)."""
from lib.losses.sgan import classification_loss, sgan_loss

__all__ = ["classification_loss", "sgan_loss"]
