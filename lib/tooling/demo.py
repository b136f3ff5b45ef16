"""The end-to-end demo: synthetic data -> SGAN training -> seeds -> evaluation -> figure.

Runs the same code path as on VOC (the paper's keys, train_sgan / infer_cam / the evaluator)
on the repository's synthetic VOC-format data, sized for a CPU.
"""
import os

import numpy as np
import torch

from lib.config import (
    SCHEMA,
    after_training_keys,
    checkpoint_path,
    dataset_path,
    load_config,
    model_dir,
    result_dir,
)
from lib.evaluation.folder import evaluate_folder
from lib.files import atomic_write_bytes, file_names
from lib.image import read_grey, read_image, read_label_png
from lib.network.checkpoint import load_checkpoint
from lib.network.sgan import sgan_from_config
from lib.pictures.panels import Panel, heatmap, save_seed_grid
from lib.seeds.crf import class_probabilities
from lib.seeds.inference import inference_dataset
from lib.stage2 import infer_cam, train_sgan
from lib.stage2.infer_cam import class_maps
from lib.tooling.synthetic import generate_dataset
from lib.training.runtime import resolve_device, setup_logger

FIGURE_COLUMNS = ("image", "saliency", "initial seeds", "class map (M)", "SGAN seeds",
                  "ground truth")


def _same_training(cfg):
    """True if the final checkpoint exists and was trained with this configuration (keys
    that only matter after training may differ)."""
    saved = os.path.join(model_dir(cfg), "config.yml")
    if not (os.path.exists(checkpoint_path(cfg)) and os.path.exists(saved)):
        return False
    trained = load_config(saved)
    return all(trained[k] == cfg[k] for k in SCHEMA if k not in after_training_keys(cfg))


def comparison_table(initial, sgan):
    """Initial seeds vs SGAN seeds: precision, recall, IoU per class and the means, in percent."""
    names = initial["class_names"][:initial["mean_classes"]]
    width = max(len(n) for n in names)
    head = f"{'':<{width}}  {'initial seeds':^23}  {'SGAN seeds':^23}"
    sub = f"{'class':<{width}}  " + "  ".join(["  prec  recall    IoU"] * 2)
    lines = [head, sub]

    def cells(result, c):
        return "  ".join("   n/a" if np.isnan(result[key][c]) else f"{100 * result[key][c]:6.2f}"
                         for key in ("precision", "recall", "iou"))

    for c, name in enumerate(names):
        lines.append(f"{name:<{width}}  {cells(initial, c)}  {cells(sgan, c)}")
    lines.append("-" * len(sub))
    for label, key in (("mean precision (mp)", "mp"), ("mean recall (mr)", "mr"),
                       ("mIoU", "mIoU")):
        lines.append(f"{label:<22}{100 * initial[key]:8.2f}  ->  {100 * sgan[key]:6.2f}"
                     f"   ({100 * (sgan[key] - initial[key]):+.2f})")
    return "\n".join(lines)


def draw_figure(cfg, names, path, device):
    """Rows of image | saliency | initial seeds | class map | SGAN seeds | ground truth."""
    model = sgan_from_config(cfg)
    load_checkpoint(model, checkpoint_path(cfg))
    model.to(device).eval()
    dataset = inference_dataset(cfg, names=names, normalise=True)
    root = cfg.dataset_root
    rows = []
    for item in dataset:
        name = item["name"]
        image = read_image(dataset.image_path(name))[:, :, ::-1].copy()
        with torch.no_grad():
            maps = class_maps(model, item["image"][None].to(device), item["sal"][None].to(device),
                              cfg.combine_seedseg)[0].cpu().numpy()
        tags = np.flatnonzero(item["label"].numpy()) + 1
        strongest = class_probabilities(maps, tags, maps.shape[1:]).max(axis=0)
        rows.append([
            Panel("rgb", image),
            Panel("gray", read_grey(dataset.sal_path(name))),
            Panel("labels", read_label_png(os.path.join(root, "ini_seed", cfg.seed_subdir,
                                                        name + ".png"))),
            Panel("rgb", heatmap(strongest, image, vmin=0.0, vmax=1.0)),
            Panel("labels", read_label_png(os.path.join(result_dir(cfg), name + ".png"))),
            Panel("labels", read_label_png(os.path.join(dataset_path(cfg, cfg.gt_path),
                                                        name + ".png"))),
        ])
    save_seed_grid(rows, path, column_titles=FIGURE_COLUMNS)


def run(cfg, num_images=200, min_size=64, max_size=128, data_seed=0, figure=None,
        figure_rows=6):
    """Generate data if absent, train (unless already trained with this config), infer
    seeds, evaluate initial and SGAN seeds, print the comparison, draw the figure.

    Returns {"initial": result, "sgan": result} (results of lib.evaluation.folder.evaluate_folder).
    """
    logger = setup_logger("sgan.demo")
    tags_file = dataset_path(cfg, cfg.cue_file)
    if not os.path.exists(tags_file):
        logger.info("generating %d synthetic images in %s", num_images, cfg.dataset_root)
        generate_dataset(cfg.dataset_root, num_images=num_images, min_size=min_size,
                         max_size=max_size, seed=data_seed, sal_subdir=cfg.sal_subdir,
                         seed_subdir=cfg.seed_subdir)
    if _same_training(cfg):
        logger.info("found %s trained with this config; delete it to train again",
                    checkpoint_path(cfg))
    else:
        train_sgan.run(cfg)
    seeds = infer_cam.run(cfg)

    gt = dataset_path(cfg, cfg.gt_path)
    initial_dir = os.path.join(cfg.dataset_root, "ini_seed", cfg.seed_subdir)
    results = {"initial": evaluate_folder(initial_dir, gt, cfg.num_classes, progress=False),
               "sgan": evaluate_folder(seeds, gt, cfg.num_classes, progress=False)}
    table = comparison_table(results["initial"], results["sgan"])
    print(table)
    atomic_write_bytes(os.path.join(model_dir(cfg), "demo_results.txt"), (table + "\n").encode())
    if figure:
        names = file_names(seeds)
        draw_figure(cfg, names[:figure_rows], figure, resolve_device(cfg.device))
        logger.info("figure written to %s", figure)
    return results
