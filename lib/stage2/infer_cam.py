"""Seed inference (SPEC section 5): class maps of a trained SGAN -> seed PNGs."""
import os

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from lib.config import checkpoint_path, result_dir
from lib.dataset.voc12_sgan import VOC12SalInferDataset
from lib.network.checkpoint import load_sgan
from lib.network.sgan import sgan_from_config
from lib.seeds import seed_to_image_size, seeds_from_cams
from lib.utils.io import write_png
from lib.utils.runtime import resolve_device, setup_logger


def class_maps(model, image, sal, combine_seedseg):
    """M = cam + seg (``combine_seedseg``) or cam, as float32 (batch x 20 x h x w)."""
    _, seg, cam = model.forward_cam(image, sal)
    return (cam + seg if combine_seedseg else cam).float()


def run(cfg):
    """Write ``<res_path>/<cfg_name><test_cfg>/NAME.png`` for every image of the tags file."""
    out_dir = result_dir(cfg)
    os.makedirs(out_dir, exist_ok=True)
    logger = setup_logger("sgan.infer", out_dir.rstrip("/") + ".log")
    device = resolve_device(cfg.device)
    model = sgan_from_config(cfg)
    weights = checkpoint_path(cfg)
    load_sgan(model, weights)
    model.to(device).eval()

    dataset = VOC12SalInferDataset(
        cfg.dataset_root, cfg.cue_file, new_size=cfg.new_size, mean=cfg.mean, std=cfg.std,
        sal_subdir=cfg.sdnet_path, sal_thresh=cfg.sal_thresh)
    if not cfg.overwrite:
        dataset.names = [n for n in dataset.names
                         if not os.path.exists(os.path.join(out_dir, n + ".png"))]
    logger.info("seeds for %d images from %s into %s", len(dataset), weights, out_dir)
    loader = DataLoader(dataset, batch_size=cfg.test_batch_size, num_workers=cfg.num_worker,
                        pin_memory=device.type == "cuda")
    with torch.no_grad():
        for batch in tqdm(loader, desc="seeds", dynamic_ncols=True):
            maps = class_maps(model, batch["image"].to(device), batch["sal"].to(device),
                              cfg.combine_seedseg).cpu().numpy()
            for j, name in enumerate(batch["name"]):
                tags = np.flatnonzero(batch["label"][j].numpy()) + 1
                mask = seeds_from_cams(maps[j], tags, batch["bg"][j].numpy(), cfg.cam_thresh,
                                       cfg.ignore_conflict)
                write_png(os.path.join(out_dir, name + ".png"),
                          seed_to_image_size(mask, batch["size"][j].numpy()))
    return out_dir
