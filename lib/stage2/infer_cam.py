"""Seed inference: class maps of a trained SGAN -> seed PNGs (SPEC section 5, or 6 with a CRF).

The network runs in this process; each image's seeds and optional extras (class-map record,
picture) are made by lib.stage2.seed_writer, in worker processes for the CRF so that the
device keeps working while the CPU runs CRFs. Several processes (torchrun, or
``num_processes``) each take every world_size-th image; their outputs are disjoint files.
"""
import os

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from lib.config import check_dataset_paths, checkpoint_path, result_dir
from lib.crf import crf_settings
from lib.dataset.voc12_sgan import VOC12SalInferDataset, normalise_on_device
from lib.network.checkpoint import load_sgan
from lib.network.sgan import sgan_from_config
from lib.dataset.check import check_files
from lib.stage2.seed_writer import ImageJob, OutputSettings, OutputWriter
from lib.utils.distributed import barrier, launch, shard
from lib.utils.runtime import amp_dtype, autocast, process_logger


def class_maps(model, image, sal, combine_seedseg):
    """M = cam + seg (``combine_seedseg``) or cam, as float32 (batch x 20 x h x w)."""
    _, seg, cam = model.forward_cam(image, sal)
    return (cam + seg if combine_seedseg else cam).float()


def output_settings(cfg):
    """The per-image outputs the config asks for (CRF keys checked in crf mode)."""
    return OutputSettings(
        seed_dir=result_dir(cfg), seed_mode=cfg.seed_mode, cam_thresh=cfg.cam_thresh,
        ignore_conflict=cfg.ignore_conflict,
        crf=crf_settings(cfg) if cfg.seed_mode == "crf" else {},
        save_class_maps=cfg.save_class_maps, save_pictures=cfg.save_pictures)


def run(cfg):
    """Write ``<res_path>/<cfg_name><test_cfg>/NAME.png`` for every image of the tags file
    (and ``..._maps/NAME.npz``, ``..._pictures/NAME.png`` if asked); return the seed folder.

    Images whose files all exist are skipped unless ``overwrite`` is true.
    """
    launch(_infer, cfg)
    return result_dir(cfg)


def _infer(ctx, cfg):
    check_dataset_paths(cfg, "cue_file")
    settings = output_settings(cfg)
    out_dir = settings.seed_dir
    device = ctx.device
    model = sgan_from_config(cfg)
    weights = checkpoint_path(cfg)
    load_sgan(model, weights)  # check the inputs before writing anything
    dataset = VOC12SalInferDataset(
        cfg.dataset_root, cfg.cue_file, new_size=cfg.new_size, mean=cfg.mean, std=cfg.std,
        sal_subdir=cfg.sdnet_path, sal_thresh=cfg.sal_thresh,
        normalise=False)  # uint8 images, normalised on the device
    check_files(dataset.names, dataset.image_path, {"saliency map": dataset.sal_path})
    os.makedirs(out_dir, exist_ok=True)
    logger = process_logger("sgan.infer", out_dir.rstrip("/") + ".log", ctx.is_main)
    total = len(dataset)
    if not cfg.overwrite:
        dataset.names = [n for n in dataset.names if not settings.done(n)]
    todo = len(dataset.names)
    dataset.names = shard(dataset.names, ctx)
    dtype = amp_dtype(cfg.amp, device)
    memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
    workers = cfg.crf_workers if cfg.seed_mode == "crf" and dataset.names else 0
    logger.info("%s seeds for %d images on %d x %s from %s into %s; %d already there%s",
                cfg.seed_mode, todo, ctx.world_size, device, weights, out_dir, total - todo,
                "" if cfg.overwrite else " (overwrite=true to redo them)")
    loader = DataLoader(dataset, batch_size=cfg.test_batch_size, num_workers=cfg.num_worker,
                        pin_memory=device.type == "cuda")
    with OutputWriter(settings, workers) as writer, torch.no_grad():
        model.to(device, memory_format=memory_format).eval()  # after the writer forked
        for batch in tqdm(loader, desc="seeds", dynamic_ncols=True, disable=not ctx.is_main):
            image = normalise_on_device(batch["image"].to(device, non_blocking=True),
                                        cfg.mean, cfg.std, cfg.channels_last)
            with autocast(dtype, device):
                maps = class_maps(model, image, batch["sal"].to(device), cfg.combine_seedseg)
            maps = maps.cpu().numpy()
            for j, name in enumerate(batch["name"]):
                tags = np.flatnonzero(batch["label"][j].numpy()) + 1
                writer.submit(ImageJob(name, maps[j], tags, batch["bg"][j].numpy(),
                                       tuple(batch["size"][j].tolist()),
                                       dataset.image_path(name)))
    barrier(ctx)
