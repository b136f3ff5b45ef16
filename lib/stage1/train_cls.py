"""Train the baseline classifier and export its backbone as ``vgg_init.pth``.

ImageNet VGG16 (converted by tools/convert_vgg.py) fine-tuned for VOC multi-label
classification with SGAN's recipe (SPEC section 4: SGD, four parameter groups, poly lr) and
the multi-label soft margin loss alone. The published ``vgg_init.pth`` was made this way but
never released with its code; ours has its format (SPEC section 8).
"""
import os

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler
from tqdm import tqdm

from lib.config import model_dir, pretrain_path, save_config
from lib.dataset.voc12_cls import VOC12ClsDataset
from lib.errors import UserError
from lib.network.checkpoint import load_backbone, save_state_dict
from lib.network.classifier import classifier_from_config
from lib.optim import build_optimizer, poly_lr, set_lr
from lib.utils.runtime import resolve_device, seed_everything, setup_logger

VGG_INIT_NAME = "vgg_init.pth"


def build_train_loader(cfg, device):
    dataset = VOC12ClsDataset(
        cfg.dataset_root, cfg.cue_file, max_iters=cfg.max_iter * cfg.batch_size,
        new_size=cfg.resize, mirror=True, mean=cfg.mean, std=cfg.std, flip_seed=cfg.random_seed)
    sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(cfg.random_seed))
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                      num_workers=cfg.num_worker, drop_last=True,
                      pin_memory=device.type == "cuda", persistent_workers=cfg.num_worker > 0)


def export_vgg_init(model, path):
    """Write the backbone alone, keys ``conv1_1.weight`` ... ``conv5_3.bias`` (caffe layout)."""
    state = {k: v.detach().cpu().clone() for k, v in model.backbone.state_dict().items()}
    save_state_dict(state, path)


def run(cfg):
    """Train for ``max_iter`` iterations; write checkpoints, ``train.log``, ``config.yml`` and,
    at the end, ``vgg_init.pth`` in ``<save_model_path>/<cfg_name>``. Returns its path."""
    pretrain = pretrain_path(cfg)
    out_dir = model_dir(cfg)
    os.makedirs(out_dir, exist_ok=True)
    logger = setup_logger("sgan.train_cls", os.path.join(out_dir, "train.log"))
    save_config(cfg, os.path.join(out_dir, "config.yml"))
    seed_everything(cfg.random_seed)
    device = resolve_device(cfg.device)

    model = classifier_from_config(cfg)
    if pretrain:
        load_backbone(model, pretrain)
    model.to(device).train()
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    loader = build_train_loader(cfg, device)
    logger.info("training classifier %s on %s: %d images, %d iterations of batch %d, "
                "backbone from %s", cfg.cfg_name, device, len(loader.dataset.names),
                cfg.max_iter, cfg.batch_size, pretrain or "scratch")

    progress = tqdm(total=cfg.max_iter, desc="train_cls", dynamic_ncols=True)
    for iteration, batch in zip(range(cfg.max_iter), loader):
        lr = poly_lr(cfg.lr, iteration, cfg.max_iter, cfg.power)
        set_lr(optimizer, lr)
        score = model(batch["image"].to(device, non_blocking=True))
        loss = F.multilabel_soft_margin_loss(score, batch["label"].to(device))
        if not torch.isfinite(loss):
            raise UserError(f"loss is {loss.item()} at iteration {iteration + 1}; stopped, "
                            f"the last checkpoint in {out_dir} is intact")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        step = iteration + 1
        progress.update(1)
        progress.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
        if step % cfg.display_step == 0 or step == cfg.max_iter:
            logger.info("iter %d/%d loss %.4f lr %.3e", step, cfg.max_iter, loss.item(), lr)
        if step % cfg.step_size == 0 or step == cfg.max_iter:
            path = os.path.join(out_dir, f"model_iter_{step}.pth")
            save_state_dict(model.state_dict(), path)
            logger.info("saved %s", path)
    progress.close()
    vgg_init = os.path.join(out_dir, VGG_INIT_NAME)
    export_vgg_init(model, vgg_init)
    logger.info("saved %s (backbone for SGAN's pretrain)", vgg_init)
    return vgg_init
