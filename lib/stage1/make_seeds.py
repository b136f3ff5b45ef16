"""Initial seeds from the baseline classifier's CAMs (the published ``ini_seed/base_30_bg``).

Per image with tags T: each c in T claims CAM[c-1] > fg_thresh (0.30) x its max; the
saliency says background where the full-size saliency / 255, zoomed to h x h, is below
sal_thresh (0.06); claims are painted by the area rule of SPEC section 5 (larger first, so
smaller regions win; then boat/train pixels that are background go back to 0); the rest is
21. Masks are zoomed to image size and written as 8-bit grey PNGs of raw values.
"""
import os

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from lib.config import check_dataset_paths, checkpoint_path, model_dir
from lib.dataset.check import check_files
from lib.dataset.voc12_sgan import VOC12SalInferDataset, normalise_on_device
from lib.network.checkpoint import load_sgan
from lib.network.classifier import classifier_from_config
from lib.seeds import seed_to_image_size, seeds_from_cams
from lib.utils.io import write_png
from lib.utils.runtime import resolve_device, setup_logger


def seed_dir(cfg):
    """Where the seeds go: ``seed_out_path``, else ``<dataset_root>/ini_seed/<seed_subdir>``
    (the folder SGAN's training reads)."""
    return cfg.seed_out_path or os.path.join(cfg.dataset_root, "ini_seed", cfg.seed_subdir)


def seed_masks(cams, labels, bg, fg_thresh, ignore_conflict=False):
    """Paint the h x w seed masks of a batch (uint8, batch x h x w).

    cams: (batch, 20, h, w) class activation maps; labels: (batch, 20) multi-hot tags;
    bg: bool (batch, h, w) saliency background.
    """
    masks = [seeds_from_cams(cam, np.flatnonzero(label) + 1, background, fg_thresh,
                             ignore_conflict)
             for cam, label, background in zip(np.asarray(cams), np.asarray(labels),
                                                np.asarray(bg))]
    return np.stack(masks).astype(np.uint8)


def run(cfg):
    """Write a seed PNG for every image of the tags file; return the output folder.

    Images whose PNG exists are skipped unless ``overwrite`` is true.
    """
    check_dataset_paths(cfg, "cue_file")
    model = classifier_from_config(cfg)
    weights = checkpoint_path(cfg)
    load_sgan(model, weights)
    dataset = VOC12SalInferDataset(
        cfg.dataset_root, cfg.cue_file, new_size=cfg.new_size, mean=cfg.mean, std=cfg.std,
        sal_subdir=cfg.sdnet_path, sal_thresh=cfg.sal_thresh,
        normalise=False)  # uint8 images, normalised on the device
    check_files(dataset.names, dataset.image_path, {"saliency map": dataset.sal_path})
    device = resolve_device(cfg.device)
    model.to(device).eval()
    out_dir = seed_dir(cfg)
    os.makedirs(out_dir, exist_ok=True)
    logger = setup_logger("sgan.make_seeds", os.path.join(model_dir(cfg), "make_seeds.log"))
    total = len(dataset)
    if not cfg.overwrite:
        dataset.names = [n for n in dataset.names
                         if not os.path.exists(os.path.join(out_dir, n + ".png"))]
    logger.info("seeds (fg_thresh %.2f) for %d images from %s into %s; %d skipped as already "
                "there%s",
                cfg.fg_thresh, len(dataset), weights, out_dir, total - len(dataset),
                "" if cfg.overwrite else " (overwrite=true to redo them)")
    loader = DataLoader(dataset, batch_size=cfg.test_batch_size, num_workers=cfg.num_worker,
                        pin_memory=device.type == "cuda")
    with torch.no_grad():
        for batch in tqdm(loader, desc="seeds", dynamic_ncols=True):
            image = normalise_on_device(batch["image"].to(device), cfg.mean, cfg.std)
            cams = model.forward_cam(image).float().cpu().numpy()
            masks = seed_masks(cams, batch["label"].numpy(), batch["bg"].numpy(), cfg.fg_thresh,
                               cfg.ignore_conflict)
            for name, mask, size in zip(batch["name"], masks, batch["size"].numpy()):
                write_png(os.path.join(out_dir, name + ".png"), seed_to_image_size(mask, size))
    return out_dir
