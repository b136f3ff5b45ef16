"""Validation while stage 3 trains (``val_every``): a broken run shows itself in minutes.

Every ``val_every`` iterations and after the last one, the network in eval mode labels the
images of ``val_list`` (default: the list of ``split``; its first ``val_max_images`` if set)
at one scale, the middle of ``test_scales``, without the CRF (the argmax of the summed
scores), and the labels are scored against the dataset's segmentation ground truth: the mIoU
over the classes 0..C of the evaluator's segmentation mode. Each process labels its share of the
names and the confusion matrices are summed over processes, so every process gets the same
score. Validation draws no random numbers (it runs under ``torch.random.fork_rng``), so a run
with it trains exactly the weights of a run without it.
"""
import os

import torch

from lib.config import ConfigError
from lib.dataset.check import check_files
from lib.dataset.description import describe
from lib.errors import UserError
from lib.evaluation.metrics import ConfusionMatrix
from lib.files import read_names
from lib.image import read_image, read_label_png
from lib.normalisation import inference_normalisation
from lib.paths import dataset_path, split_list_path
from lib.stage3.predict import multi_scale_scores
from lib.training.distributed import all_reduce_sum, shard


def validation_list(cfg):
    """The list file of the validation images: ``val_list`` (dataset-relative), else the
    list of ``split``."""
    return dataset_path(cfg, cfg.val_list) if cfg.val_list else split_list_path(cfg)


def validation_names(cfg):
    """The names validation scores: the list's, its first ``val_max_images`` if set."""
    path = validation_list(cfg)
    key = "val_list" if cfg.val_list else "split"
    if not os.path.isfile(path):
        raise ConfigError(f"config key '{key}': list file not found: {path} (the images "
                          f"val_every scores)")
    names = read_names(path)
    return names[:cfg.val_max_images] if cfg.val_max_images else names


def validation_side(cfg):
    """The one input side of validation: the middle of ``test_scales`` (385 published)."""
    return sorted(cfg.test_scales)[len(cfg.test_scales) // 2]


class Validation:
    """The images, ground truth and input of validation, checked when training starts (not at
    the first validation, hours later): the list holds names, each with its image and its
    ground truth of the image's size."""

    def __init__(self, cfg):
        self.every, self.last = cfg.val_every, cfg.max_iter
        self.names = validation_names(cfg)
        self.root, self.dataset = cfg.dataset_root, describe(cfg)
        self.gt_dir = dataset_path(cfg, self.dataset.segmentation_gt)
        try:
            check_files(self.names, self.image_path, {"ground truth": self.gt_path}, grey=False)
        except UserError as exc:
            raise ConfigError(f"val_every: {exc} (set val_list to images that have both, or "
                              f"val_every=0)") from None
        self.side = validation_side(cfg)
        self.normalisation = inference_normalisation(cfg)

    def image_path(self, name):
        return self.dataset.image_path(self.root, name)

    def gt_path(self, name):
        return os.path.join(self.gt_dir, name + ".png")

    def due(self, iteration):
        """Whether validation runs after ``iteration``."""
        return iteration % self.every == 0 or iteration == self.last

    def miou(self, model, ctx):
        """The mIoU (0..1) of ``model`` on the validation images; ``model`` is left in train
        mode and the random streams as they were."""
        classes = self.dataset.num_classes
        confusion = ConfusionMatrix(classes, self.dataset)
        devices = [ctx.device] if ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            model.eval()
            try:
                for name in shard(self.names, ctx):
                    image_rgb = read_image(self.image_path(name))[:, :, ::-1]
                    scores = multi_scale_scores(model, image_rgb, [self.side], ctx.device,
                                                exact=False, normalisation=self.normalisation)
                    gt = read_label_png(self.gt_path(name))
                    confusion.update(gt, scores.argmax(axis=0))
            finally:
                model.train()
        counts = all_reduce_sum(torch.from_numpy(confusion.matrix).to(ctx.device), ctx)
        return ConfusionMatrix(classes, self.dataset).merge(counts.cpu().numpy()).scores()["mIoU"]
