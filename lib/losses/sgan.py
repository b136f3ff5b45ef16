"""Stage 1 and 2 losses (recipe 4): multi-label soft margin on the class scores (or, for
COCO, the balanced sigmoid cross-entropy of recipe 14.2: config key ``cls_loss``), and SGAN's
cross-entropy on the initial seeds.

Scores are N x C (C the dataset's foreground classes); the seed branch's target holds class
c - 1 for class c and C (its channel count) where it is ignored.
"""
import torch
import torch.nn.functional as F


def soft_margin(score, label, num_samples=None):
    """Multi-label soft margin of the class scores (the published loss), a mean over
    ``num_samples`` samples (by default this batch's; a process holding part of a global
    batch passes the global size)."""
    num_samples = score.shape[0] if num_samples is None else num_samples
    return F.multilabel_soft_margin_loss(score.float(), label, reduction="sum") / num_samples


def balanced_bce(score, label, num_samples=None):
    """Balanced sigmoid cross-entropy (recipe 14.2), the classification loss for COCO.

    For each image, with P its present classes (label 1) and N its absent ones (label 0):
    mean over P of softplus(-s) + mean over N of softplus(s), so that the few present classes
    weigh as much as the many absent ones. An image without present classes contributes the
    second term only, one without absent classes the first term only. A mean over
    ``num_samples`` images (by default this batch's; a process holding part of a global batch
    passes the global size). ``score`` and ``label`` are N x C; returns a scalar.
    """
    num_samples = score.shape[0] if num_samples is None else num_samples
    score = score.float()
    present, absent = label.float(), 1.0 - label.float()
    positive = (F.softplus(-score) * present).sum(1) / present.sum(1).clamp(min=1.0)
    negative = (F.softplus(score) * absent).sum(1) / absent.sum(1).clamp(min=1.0)
    return (positive + negative).sum() / num_samples


# config key cls_loss -> the classification loss of stages 1 and 2
CLASSIFICATION_LOSSES = {"soft_margin": soft_margin, "balanced_bce": balanced_bce}


def classification_loss(score, label, num_samples=None, kind="soft_margin"):
    """The classification loss ``kind`` (config key ``cls_loss``) of the class scores, a mean
    over ``num_samples`` samples (see :func:`soft_margin`)."""
    return CLASSIFICATION_LOSSES[kind](score, label, num_samples)


def sgan_loss(score, seg, label, seed, seed_loss_ratio, use_seed_loss=True, num_samples=None,
              num_seed_pixels=None, cls_loss="soft_margin"):
    """The classification loss ``cls_loss`` (the published multi-label soft margin by
    default) on the CAM scores + ratio x cross-entropy on the seeds.

    Both terms are means: over ``num_samples`` samples and ``num_seed_pixels`` labelled seed
    pixels, by default those of this batch. A process holding part of a global batch passes
    the global counts, so the processes' losses add up to the global batch's loss. A batch
    without labelled seed pixels adds 0 for the seed term. The seed target's ignore index is
    C, the channel count of ``seg``. Returns (total, cls, seed).
    """
    cls_loss = classification_loss(score, label, num_samples, cls_loss)
    if not use_seed_loss:
        return cls_loss, cls_loss, torch.zeros_like(cls_loss)
    ignore = seg.shape[1]
    if num_seed_pixels is None:
        num_seed_pixels = (seed != ignore).sum()
    seed_sum = F.cross_entropy(seg.float(), seed, ignore_index=ignore, reduction="sum")
    seed_loss = seed_sum / max(int(num_seed_pixels), 1)
    return cls_loss + seed_loss_ratio * seed_loss, cls_loss, seed_loss
