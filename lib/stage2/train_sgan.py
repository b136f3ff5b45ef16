"""Train SGAN (SPEC section 4) with the shared loop of lib/training.py."""
import os

import torch
import torch.nn.functional as F

from lib.config import model_dir
from lib.dataset.check import check_files
from lib.dataset.voc12_sgan import SEED_IGNORE, VOC12ClsSalDataset
from lib.network.checkpoint import load_backbone
from lib.network.sgan import sgan_from_config
from lib.training import TrainingTask, train
from lib.utils.distributed import all_reduce_sum
from lib.utils.runtime import autocast


def sgan_loss(score, seg, label, seed, seed_loss_ratio, use_seed_loss=True, num_samples=None,
              num_seed_pixels=None):
    """Multi-label soft margin on the CAM scores + ratio x cross-entropy on the seeds.

    Both terms are means: over ``num_samples`` samples and ``num_seed_pixels`` labelled seed
    pixels, by default those of this batch. A process holding part of a global batch passes
    the global counts, so the processes' losses add up to the global batch's loss. A batch
    without labelled seed pixels adds 0 for the seed term. Returns (total, cls, seed).
    """
    score, seg = score.float(), seg.float()
    num_samples = score.shape[0] if num_samples is None else num_samples
    cls_loss = F.multilabel_soft_margin_loss(score, label, reduction="sum") / num_samples
    if not use_seed_loss:
        return cls_loss, cls_loss, torch.zeros_like(cls_loss)
    if num_seed_pixels is None:
        num_seed_pixels = (seed != SEED_IGNORE).sum()
    seed_sum = F.cross_entropy(seg, seed, ignore_index=SEED_IGNORE, reduction="sum")
    seed_loss = seed_sum / max(int(num_seed_pixels), 1)
    return cls_loss + seed_loss_ratio * seed_loss, cls_loss, seed_loss


class SGANTraining(TrainingTask):
    """SGAN: tags supervise the CAM branch, initial seeds the seed branch."""

    name = "train"
    term_names = ("loss", "cls", "seed")

    def build_model(self, cfg, pretrain):
        model = sgan_from_config(cfg)
        if pretrain:
            load_backbone(model, pretrain)
        return model

    def build_dataset(self, cfg):
        dataset = VOC12ClsSalDataset(
            cfg.dataset_root, cfg.cue_file, max_iters=cfg.max_iter * cfg.batch_size,
            new_size=cfg.resize, mirror=True, mean=cfg.mean, std=cfg.std,
            sal_subdir=cfg.sal_subdir, seed_subdir=cfg.seed_subdir, sal_thresh=cfg.sal_thresh,
            flip_seed=cfg.random_seed, normalise=False)  # uint8 images, normalised on the device
        check_files(dataset.names, dataset.image_path,
                    {"saliency map": dataset.sal_path, "seed map": dataset.seed_path})
        return dataset

    def has_unused_parameters(self, cfg):
        return not cfg.use_sal  # without saliency the seed branch gets no gradient

    def loss(self, net, batch, cfg, ctx, dtype):
        seed_pixels = all_reduce_sum((batch["seed"] != SEED_IGNORE).sum(), ctx)
        with autocast(dtype, batch["image"].device):
            score, seg = net(batch["image"], batch["sal"])
        loss, cls_loss, seed_loss = sgan_loss(score, seg, batch["label"], batch["seed"],
                                              cfg.seed_loss_ratio, cfg.use_sal, cfg.batch_size,
                                              seed_pixels)
        terms = torch.stack([loss, cls_loss, seed_loss]).detach()
        return loss, all_reduce_sum(terms, ctx)

    def status(self, model):
        return f" gamma {model.gamma.item():.4f}"


def run(cfg):
    """Train SGAN for ``max_iter`` iterations; return the final checkpoint's path."""
    train(cfg, SGANTraining())
    return os.path.join(model_dir(cfg), f"model_iter_{cfg.max_iter}.pth")
