"""Train SGAN (recipe 4; semi-supervised with ``strong_list``, recipe 12) with the shared
loop of lib/training/loop.py."""
import os

import torch

from lib.dataset.check import check_files
from lib.dataset.description import describe
from lib.dataset.strong import check_ground_truth, strong_names, strong_note
from lib.dataset.tags import load_tags
from lib.dataset.voc12_sgan import VOC12ClsSalDataset
from lib.losses import sgan_loss
from lib.network.sgan import sgan_from_config
from lib.paths import dataset_path, model_dir
from lib.training.distributed import all_reduce_sum
from lib.training.loop import TrainingTask, train
from lib.training.runtime import autocast


# The config keys this step reads: one given on the command line that is not among them
# changes nothing here (lib.cli says so); a run's config.yml records these.
CONFIG_KEYS = frozenset({
    "amp", "backbone", "batch_size", "cfg_name", "channels_last", "cls_loss", "conv5_dilation",
    "cue_file", "dataset_name", "dataset_root", "device", "display_step", "gt_path", "init",
    "lr", "max_iter", "mean", "num_processes", "num_worker", "overwrite", "power", "pretrain",
    "random_seed", "resize", "resume", "sal_subdir", "sal_thresh", "save_model_path",
    "seed_loss_ratio", "seed_subdir", "std", "step_size", "strong_list", "use_sal",
    "weight_decay", "width_mult",
})


class SGANTraining(TrainingTask):
    """SGAN: tags supervise the CAM branch, initial seeds (or ground truth) the seed branch."""

    name = "train"
    term_names = ("loss", "cls", "seed")
    config_keys = CONFIG_KEYS

    def network(self, cfg):
        return sgan_from_config(cfg)

    def build_dataset(self, cfg):
        """Weakly supervised: the initial seeds; with ``strong_list`` (recipe 12) the ground truth
        of its names and no seed target for the others (no initial seed is read)."""
        description = describe(cfg)
        names = sorted(load_tags(dataset_path(cfg, cfg.cue_file), description))
        strong = strong_names(cfg, names)
        dataset = VOC12ClsSalDataset(
            cfg.dataset_root, cfg.cue_file, sal_subdir=cfg.sal_subdir,
            seed_subdir=cfg.seed_subdir, sal_thresh=cfg.sal_thresh, strong_names=strong,
            gt_dir=cfg.gt_path, description=description, **self.sample_options(cfg))
        maps = {"saliency map": dataset.sal_path}
        if strong is None:
            maps["seed map"] = dataset.seed_path
        check_files(dataset.names, dataset.image_path, maps)
        if strong:
            check_ground_truth(strong, dataset.image_path, dataset.gt_path, dataset=description)
        return dataset

    def dataset_note(self, dataset):
        return strong_note(dataset.strong_names)

    def has_unused_parameters(self, cfg):
        return not cfg.use_sal  # without saliency the seed branch gets no gradient

    def loss(self, net, batch, cfg, ctx, dtype):
        seed_pixels = all_reduce_sum((batch["seed"] != describe(cfg).seed_ignore).sum(), ctx)
        with autocast(dtype, batch["image"].device):
            score, seg = net(batch["image"], batch["sal"])
        loss, cls_loss, seed_loss = sgan_loss(score, seg, batch["label"], batch["seed"],
                                              cfg.seed_loss_ratio, cfg.use_sal, cfg.batch_size,
                                              seed_pixels, cfg.cls_loss)
        terms = torch.stack([loss, cls_loss, seed_loss]).detach()
        return loss, all_reduce_sum(terms, ctx)

    def status(self, model):
        return f" gamma {model.gamma.item():.4f}"


def run(cfg):
    """Train SGAN for ``max_iter`` iterations; return the final checkpoint's path."""
    train(cfg, SGANTraining())
    return os.path.join(model_dir(cfg), f"model_iter_{cfg.max_iter}.pth")
