"""Train SGAN (SPEC section 4): one loop for one process, torchrun or self-spawned processes.

The global batch is ``batch_size`` whatever the number of processes: each process takes its
share of every global batch and scales its loss so that DistributedDataParallel's gradient
average equals the gradient of the whole batch's loss. Checkpoints every ``step_size``
iterations: ``model_iter_<N>.pth`` (the plain state dict of SPEC section 8) and
``train_state.pth`` (model, optimizer, iteration, RNG states, config) to resume from.
"""
import logging
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from lib.config import SCHEMA, model_dir, pretrain_path, save_config
from lib.dataset.sampler import GlobalBatchSampler
from lib.dataset.voc12_sgan import SEED_IGNORE, VOC12ClsSalDataset
from lib.errors import UserError
from lib.network.checkpoint import load_backbone, load_file, save_state_dict
from lib.network.sgan import sgan_from_config
from lib.optim import build_optimizer, poly_lr, set_lr
from lib.utils.distributed import all_reduce_sum, barrier, launch
from lib.utils.runtime import amp_dtype, autocast, setup_logger

TRAIN_STATE = "train_state.pth"


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


def build_train_loader(cfg, ctx, start_batch=0):
    """This process's loader: its share of every global batch, from ``start_batch`` on."""
    dataset = VOC12ClsSalDataset(
        cfg.dataset_root, cfg.cue_file, max_iters=cfg.max_iter * cfg.batch_size,
        new_size=cfg.resize, mirror=True, mean=cfg.mean, std=cfg.std,
        sal_subdir=cfg.sal_subdir, seed_subdir=cfg.seed_subdir, sal_thresh=cfg.sal_thresh,
        flip_seed=cfg.random_seed)
    sampler = GlobalBatchSampler(len(dataset), cfg.batch_size, cfg.random_seed, ctx.rank,
                                 ctx.world_size, start_batch)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.num_worker,
                      pin_memory=ctx.device.type == "cuda", persistent_workers=cfg.num_worker > 0,
                      generator=torch.Generator().manual_seed(cfg.random_seed))


def resume_path(cfg):
    """The train state to resume from: ``resume`` true -> the run's latest, a path -> that."""
    if cfg.resume is False:
        return None
    path = os.path.join(model_dir(cfg), TRAIN_STATE) if cfg.resume is True else cfg.resume
    if not os.path.isfile(path):
        raise UserError(f"config key 'resume': no train state at {path}")
    return path


def _rng_state(ctx):
    state = {"cpu": torch.get_rng_state()}
    if ctx.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(ctx.device)
    return state


def _gather(obj, ctx):
    if not ctx.distributed:
        return [obj]
    gathered = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def _restore(state, model, optimizer, ctx, logger):
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    rng = state["rng"]
    if len(rng) == ctx.world_size:
        torch.set_rng_state(rng[ctx.rank]["cpu"])
        if "cuda" in rng[ctx.rank] and ctx.device.type == "cuda":
            torch.cuda.set_rng_state(rng[ctx.rank]["cuda"], ctx.device)
    else:
        logger.info("resuming on %d processes instead of %d: dropout streams start afresh",
                    ctx.world_size, len(rng))
    return int(state["iteration"])


def save_checkpoint(model, optimizer, step, cfg, ctx):
    """``model_iter_<step>.pth`` and the resumable ``train_state.pth``, written by rank 0."""
    rng = _gather(_rng_state(ctx), ctx)
    path = os.path.join(model_dir(cfg), f"model_iter_{step}.pth")
    if ctx.is_main:
        save_state_dict(model.state_dict(), path)
        save_state_dict({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "iteration": step, "rng": rng, "config": {k: cfg[k] for k in SCHEMA}},
                        os.path.join(model_dir(cfg), TRAIN_STATE))
    barrier(ctx)
    return path


def _logger(ctx, out_dir):
    if ctx.is_main:
        return setup_logger("sgan.train", os.path.join(out_dir, "train.log"))
    silent = logging.getLogger("sgan.train.worker")
    silent.disabled = True
    return silent


def run(cfg):
    """Train for ``max_iter`` iterations on every process of the job; return the final
    checkpoint's path."""
    launch(_train, cfg)
    return os.path.join(model_dir(cfg), f"model_iter_{cfg.max_iter}.pth")


def _train(ctx, cfg):
    state_file = resume_path(cfg)  # check the inputs before writing anything
    pretrain = None if state_file else pretrain_path(cfg)
    out_dir = model_dir(cfg)
    if ctx.is_main:
        os.makedirs(out_dir, exist_ok=True)
        save_config(cfg, os.path.join(out_dir, "config.yml"))
    logger = _logger(ctx, out_dir)
    device = ctx.device

    torch.manual_seed(cfg.random_seed)  # the same initial weights on every process
    model = sgan_from_config(cfg)
    if pretrain:
        load_backbone(model, pretrain)
    memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
    model.to(device, memory_format=memory_format).train()
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    torch.manual_seed(cfg.random_seed + ctx.rank)  # dropout streams differ between processes
    start = 0
    if state_file:
        start = _restore(load_file(state_file), model, optimizer, ctx, logger)
        logger.info("resumed from %s at iteration %d", state_file, start)
    net = model
    if ctx.distributed:
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                      find_unused_parameters=not cfg.use_sal)
    dtype = amp_dtype(cfg.amp, device)
    if cfg.amp != "off" and dtype is None:
        logger.info("amp=%s needs CUDA; training in float32 on %s", cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    loader = build_train_loader(cfg, ctx, start)
    logger.info("training %s on %d x %s: %d images, iterations %d..%d of global batch %d, "
                "weights from %s", cfg.cfg_name, ctx.world_size, device,
                len(loader.dataset.names), start + 1, cfg.max_iter, cfg.batch_size,
                state_file or pretrain or "scratch")
    progress = tqdm(total=cfg.max_iter, initial=start, desc="train", dynamic_ncols=True,
                    disable=not ctx.is_main)
    for iteration, batch in zip(range(start, cfg.max_iter), loader):
        lr = poly_lr(cfg.lr, iteration, cfg.max_iter, cfg.power)
        set_lr(optimizer, lr)
        image = batch["image"].to(device, non_blocking=True, memory_format=memory_format)
        sal = batch["sal"].to(device, non_blocking=True)
        label = batch["label"].to(device, non_blocking=True)
        seed = batch["seed"].to(device, non_blocking=True)
        seed_pixels = all_reduce_sum((seed != SEED_IGNORE).sum(), ctx)
        with autocast(dtype, device):
            score, seg = net(image, sal)
        loss, cls_loss, seed_loss = sgan_loss(score, seg, label, seed, cfg.seed_loss_ratio,
                                              cfg.use_sal, cfg.batch_size, seed_pixels)
        terms = all_reduce_sum(torch.stack([loss, cls_loss, seed_loss]).detach(), ctx).tolist()
        if not all(map(torch.isfinite, torch.tensor(terms))) and not scaler.is_enabled():
            raise UserError(f"loss is {terms[0]} at iteration {iteration + 1}; stopped, the "
                            f"last checkpoint in {out_dir} is intact")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss * ctx.world_size).backward()  # DDP averages: undo its 1/world
        scaler.step(optimizer)
        scaler.update()

        step = iteration + 1
        progress.update(1)
        progress.set_postfix(loss=f"{terms[0]:.4f}", cls=f"{terms[1]:.4f}",
                             seed=f"{terms[2]:.4f}", lr=f"{lr:.2e}")
        if step % cfg.display_step == 0 or step == cfg.max_iter:
            logger.info("iter %d/%d loss %.4f cls %.4f seed %.4f gamma %.4f lr %.3e", step,
                        cfg.max_iter, *terms, model.gamma.item(), lr)
        if step % cfg.step_size == 0 or step == cfg.max_iter:
            logger.info("saved %s", save_checkpoint(model, optimizer, step, cfg, ctx))
    progress.close()
