"""The demo's tables and figures: seeds (initial vs SGAN, on the training images) and
segmentation (the network trained on each, on the held-out images); names, colours and image
paths are those of the config's dataset."""
import os

import torch

from lib.dataset.description import describe
from lib.evaluation.folder import percent
from lib.image import read_grey, read_image, read_label_png
from lib.network.checkpoint import load_checkpoint
from lib.network.sgan import sgan_from_config
from lib.paths import checkpoint_path, dataset_path, result_dir, segmentation_dir
from lib.pictures.panels import Panel, heatmap, save_seed_grid
from lib.seeds.crf import class_probabilities
from lib.seeds.inference import inference_dataset, tags_of
from lib.stage2.infer_cam import class_maps

SEED_COLUMNS = ("image", "saliency", "initial seeds", "class map (M)", "SGAN seeds",
                "ground truth")
SEGMENTATION_COLUMNS = ("image", "ground truth", "trained on initial seeds",
                        "trained on SGAN seeds")


def seed_table(initial, sgan):
    """Initial seeds vs SGAN seeds: precision, recall, IoU per class and the means, in percent."""
    names = initial["class_names"][:initial["mean_classes"]]
    width = max(len(n) for n in names)
    head = f"{'':<{width}}  {'initial seeds':^23}  {'SGAN seeds':^23}"
    sub = f"{'class':<{width}}  " + "  ".join(["  prec  recall    IoU"] * 2)
    lines = [head, sub]

    def cells(result, c):
        return "  ".join(percent(result[key][c]) for key in ("precision", "recall", "iou"))

    for c, name in enumerate(names):
        lines.append(f"{name:<{width}}  {cells(initial, c)}  {cells(sgan, c)}")
    lines.append("-" * len(sub))
    for label, key in (("mean precision (mp)", "mp"), ("mean recall (mr)", "mr"),
                       ("mIoU", "mIoU")):
        lines.append(f"{label:<22}{100 * initial[key]:8.2f}  ->  {100 * sgan[key]:6.2f}"
                     f"   ({100 * (sgan[key] - initial[key]):+.2f})")
    return "\n".join(lines)


def segmentation_table(initial, sgan):
    """Per-class IoU and mIoU (classes 0..C, percent) of the two segmentation networks."""
    names = initial["class_names"][:initial["mean_classes"]]
    width = max(len(n) for n in names)
    lines = [f"{'class':<{width}}  initial seeds  SGAN seeds"]
    for c, name in enumerate(names):
        lines.append(f"{name:<{width}}  {percent(initial['iou'][c]):>13}  "
                     f"{percent(sgan['iou'][c]):>10}")
    lines.append("-" * len(lines[0]))
    lines.append(f"{'mIoU':<{width}}  {100 * initial['mIoU']:13.2f}  {100 * sgan['mIoU']:10.2f}"
                 f"   ({100 * (sgan['mIoU'] - initial['mIoU']):+.2f})")
    return "\n".join(lines)


def draw_seed_figure(cfg, initial_dir, names, path, device):
    """Rows of image | saliency | initial seeds | class map | SGAN seeds | ground truth."""
    model = sgan_from_config(cfg)
    load_checkpoint(model, checkpoint_path(cfg))
    model.to(device).eval()
    dataset = inference_dataset(cfg, names=names, normalise=True)
    rows = []
    for item in dataset:
        name = item["name"]
        image = read_image(dataset.image_path(name))[:, :, ::-1].copy()
        with torch.no_grad():
            maps = class_maps(model, item["image"][None].to(device), item["sal"][None].to(device),
                              cfg.combine_seedseg)[0].cpu().numpy()
        strongest = class_probabilities(maps, tags_of(item["label"]), maps.shape[1:]).max(axis=0)
        rows.append([
            Panel("rgb", image),
            Panel("gray", read_grey(dataset.sal_path(name))),
            Panel("labels", read_label_png(os.path.join(initial_dir, name + ".png"))),
            Panel("rgb", heatmap(strongest, image, vmin=0.0, vmax=1.0)),
            Panel("labels", read_label_png(os.path.join(result_dir(cfg), name + ".png"))),
            Panel("labels", read_label_png(os.path.join(dataset_path(cfg, cfg.gt_path),
                                                        name + ".png"))),
        ])
    save_seed_grid(rows, path, column_titles=SEED_COLUMNS, dataset=describe(cfg))


def draw_segmentation_figure(initial_cfg, sgan_cfg, gt_dir, names, path):
    """Rows of held-out image | ground truth | the two networks' labels."""
    dataset = describe(initial_cfg)
    rows = []
    for name in names:
        image = read_image(dataset.image_path(initial_cfg.dataset_root, name))[:, :, ::-1].copy()
        rows.append([Panel("rgb", image),
                     Panel("labels", read_label_png(os.path.join(gt_dir, name + ".png")))]
                    + [Panel("labels", read_label_png(os.path.join(segmentation_dir(c),
                                                                   name + ".png")))
                       for c in (initial_cfg, sgan_cfg)])
    save_seed_grid(rows, path, column_titles=SEGMENTATION_COLUMNS, dataset=dataset)
