"""Train SGAN (SPEC section 4): one loop, poly lr, checkpoints every ``step_size`` iterations."""
import os

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler
from tqdm import tqdm

from lib.config import model_dir, pretrain_path, save_config
from lib.dataset.voc12_sgan import SEED_IGNORE, VOC12ClsSalDataset
from lib.network.checkpoint import load_backbone, save_state_dict
from lib.network.sgan import sgan_from_config
from lib.optim import build_optimizer, poly_lr, set_lr
from lib.errors import UserError
from lib.utils.runtime import resolve_device, seed_everything, setup_logger


def sgan_loss(score, seg, label, seed, seed_loss_ratio, use_seed_loss=True):
    """Multi-label soft margin on the CAM scores + ratio x cross-entropy on the seeds.

    The seed term averages over labelled seed pixels; a batch without any is worth 0 there.
    Returns (total, classification term, seed term).
    """
    cls_loss = F.multilabel_soft_margin_loss(score, label)
    if not use_seed_loss:
        return cls_loss, cls_loss, torch.zeros_like(cls_loss)
    seed_sum = F.cross_entropy(seg, seed, ignore_index=SEED_IGNORE, reduction="sum")
    seed_loss = seed_sum / (seed != SEED_IGNORE).sum().clamp(min=1)
    return cls_loss + seed_loss_ratio * seed_loss, cls_loss, seed_loss


def build_train_loader(cfg, device):
    dataset = VOC12ClsSalDataset(
        cfg.dataset_root, cfg.cue_file, max_iters=cfg.max_iter * cfg.batch_size,
        new_size=cfg.resize, mirror=True, mean=cfg.mean, std=cfg.std,
        sal_subdir=cfg.sal_subdir, seed_subdir=cfg.seed_subdir, sal_thresh=cfg.sal_thresh,
        flip_seed=cfg.random_seed)
    sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(cfg.random_seed))
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                      num_workers=cfg.num_worker, drop_last=True,
                      pin_memory=device.type == "cuda", persistent_workers=cfg.num_worker > 0)


def run(cfg):
    """Train for ``max_iter`` iterations; write checkpoints, ``train.log`` and ``config.yml``."""
    out_dir = model_dir(cfg)
    os.makedirs(out_dir, exist_ok=True)
    logger = setup_logger("sgan.train", os.path.join(out_dir, "train.log"))
    save_config(cfg, os.path.join(out_dir, "config.yml"))
    seed_everything(cfg.random_seed)
    device = resolve_device(cfg.device)

    model = sgan_from_config(cfg)
    pretrain = pretrain_path(cfg)
    if pretrain:
        load_backbone(model, pretrain)
    model.to(device).train()
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    loader = build_train_loader(cfg, device)
    logger.info("training %s on %s: %d images, %d iterations of batch %d, backbone from %s",
                cfg.cfg_name, device, len(loader.dataset.names), cfg.max_iter, cfg.batch_size,
                pretrain or "scratch")

    progress = tqdm(total=cfg.max_iter, desc="train", dynamic_ncols=True)
    for iteration, batch in zip(range(cfg.max_iter), loader):
        lr = poly_lr(cfg.lr, iteration, cfg.max_iter, cfg.power)
        set_lr(optimizer, lr)
        image = batch["image"].to(device, non_blocking=True)
        sal = batch["sal"].to(device, non_blocking=True)
        score, seg = model(image, sal)
        loss, cls_loss, seed_loss = sgan_loss(
            score, seg, batch["label"].to(device), batch["seed"].to(device),
            cfg.seed_loss_ratio, use_seed_loss=cfg.use_sal)
        if not torch.isfinite(loss):
            raise UserError(f"loss is {loss.item()} at iteration {iteration + 1}; stopped, "
                            f"the last checkpoint in {out_dir} is intact")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        step = iteration + 1
        progress.update(1)
        progress.set_postfix(loss=f"{loss.item():.4f}", cls=f"{cls_loss.item():.4f}",
                             seed=f"{seed_loss.item():.4f}", lr=f"{lr:.2e}")
        if step % cfg.display_step == 0 or step == cfg.max_iter:
            logger.info("iter %d/%d loss %.4f cls %.4f seed %.4f gamma %.4f lr %.3e", step,
                        cfg.max_iter, loss.item(), cls_loss.item(), seed_loss.item(),
                        model.gamma.item(), lr)
        if step % cfg.step_size == 0 or step == cfg.max_iter:
            path = os.path.join(out_dir, f"model_iter_{step}.pth")
            save_state_dict(model.state_dict(), path)
            logger.info("saved %s", path)
    progress.close()
    return os.path.join(out_dir, f"model_iter_{cfg.max_iter}.pth")
