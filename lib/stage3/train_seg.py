"""Train the stage-3 segmentation network on the seeds (recipe 11) with the shared loop.

DeepLab-v2 from ``seg_pretrain``, the names of ``cue_file`` with their seeds from ``seed_dir``
(names of ``strong_list`` with their ground truth, recipe 12), Caffe's distortions and crops,
the balanced seed loss plus the constrain loss through the training-time dense CRF (the CRFs
of a batch in ``crf_workers`` processes, equal to the serial ones; lib.crf.workers), Caffe's
SGD with the step schedule. Before training, the log shows the seeds' class mix and warns of
initial seeds or seeds with almost no class (lib.dataset.seed_check). Checkpoints
``<save_model_path>/<cfg_name>/model_iter_<N>.pth``; resume as stage 2.
"""
import logging
import os

import torch

from lib.config import DATASET_ROOT_FIELD, ConfigError
from lib.crf.batch import BatchCRF
from lib.crf.workers import CRFBatch, crf_choice
from lib.dataset.description import describe
from lib.dataset.seed_check import seed_notes
from lib.dataset.strong import strong_names, strong_note
from lib.dataset.tags import load_tags
from lib.dataset.voc12_seg import LABEL_STRIDE, VOC12SegDataset, check_seg_files
from lib.losses import seg_loss
from lib.losses.seg import CRF_ITERATIONS
from lib.network.deeplab import deeplab_from_config
from lib.network.deeplab_init import load_initial_weights
from lib.normalisation import check_input_scale, training_normalisation
from lib.optim import build_caffe_sgd, step_lr
from lib.paths import dataset_path, model_dir
from lib.stage3.validation import Validation
from lib.training.distributed import all_reduce_sum
from lib.training.loop import TrainingTask, train
from lib.training.metrics import VAL_COLUMN
from lib.training.runtime import autocast


# The config keys this step reads: one given on the command line that is not among them
# changes nothing here (lib.cli says so); a run's config.yml records these.
CONFIG_KEYS = frozenset({
    "amp", "batch_size", "cfg_name", "channels_last", "crf_workers", "crop_size", "cue_file",
    "dataset_name", "dataset_root", "device", "display_step", "distort", "gt_path", "init",
    "lr", "lr_gamma", "lr_step", "max_iter", "mean", "num_processes", "num_worker", "overwrite",
    "random_seed", "resume", "save_model_path", "seed_dir", "seg_backbone", "seg_pretrain",
    "seg_resize", "split", "std", "step_size", "strong_list", "test_scales", "val_every",
    "val_list", "val_max_images", "weight_decay", "width_mult",
})


class SegTraining(TrainingTask):
    """DeepLab-v2 on seeds: seed loss + constrain loss, Caffe's SGD."""

    name = "train_seg"
    term_names = ("loss", "seed", "constrain")
    pretrain_key = "seg_pretrain"
    config_keys = CONFIG_KEYS

    def __init__(self):
        self.crf = None
        self.validation = None
        self.crf_line = ""  # where the CRFs run, and why (start)
        self.notes = []  # (logging level, line): the seeds (build_dataset), initial weights

    def network(self, cfg):
        return deeplab_from_config(cfg)

    def load_pretrained(self, model, path):
        kept = load_initial_weights(model, path)
        if kept:  # logged with the seeds' notes when training starts (report)
            self.notes.append((logging.INFO, f"{path} holds a backbone alone (as stage 1's "
                                             f"vgg_init.pth): {', '.join(kept)} start from "
                                             f"their initialisation"))

    def build_dataset(self, cfg):
        check_input_scale(cfg)  # before anything is written
        if not os.path.isdir(cfg.seed_dir):
            raise ConfigError(f"config key 'seed_dir': folder not found: {cfg.seed_dir} (the "
                              f"seeds infer_cam writes; a relative path is read from the "
                              f"working folder, and '{DATASET_ROOT_FIELD}/...' follows "
                              f"dataset_root)")
        description = describe(cfg)
        names = sorted(load_tags(dataset_path(cfg, cfg.cue_file), description))
        dataset = VOC12SegDataset(
            cfg.dataset_root, names, cfg.seed_dir, resize=cfg.seg_resize,
            crop_size=cfg.crop_size, mirror=True, distort=cfg.distort, mean=cfg.mean,
            strong_names=strong_names(cfg, names) or (), gt_dir=cfg.gt_path,
            max_iters=cfg.max_iter * cfg.batch_size, random_seed=cfg.random_seed,
            normalise=False, description=description)  # uint8 images, normalised on the device
        check_seg_files(dataset)
        self.validation = Validation(cfg) if cfg.val_every else None
        self.notes = seed_notes(dataset)
        return dataset

    def dataset_note(self, dataset):
        return strong_note(dataset.strong_names or None)

    def normalisation(self, cfg):
        """The backbone's input: Caffe's mean for vgg16, ImageNet's mean and std for resnet101."""
        return training_normalisation(cfg)

    def build_optimizer(self, model, cfg):
        return build_caffe_sgd(model, cfg.lr, cfg.weight_decay)

    def learning_rate(self, cfg, iteration):
        return step_lr(cfg.lr, iteration, cfg.lr_step, cfg.lr_gamma)

    def start(self, cfg, ctx):
        workers, line = crf_choice(cfg, ctx, training_crf_batch(cfg, ctx))
        self.crf = BatchCRF(workers)
        self.crf_line = line

    def report(self, logger):
        for level, line in self.notes:
            logger.log(level, "%s", line)
        logger.info("%s", self.crf_line)

    def stop(self, failed):
        if self.crf is not None:
            self.crf.close(terminate=failed)
            self.crf = None

    def validates(self, cfg):
        return cfg.val_every > 0

    def validate(self, model, cfg, ctx, logger, iteration):
        """``val_mIoU`` after ``iteration`` when validation is due (lib.stage3.validation)."""
        if self.validation is None or not self.validation.due(iteration):
            return {}
        miou = self.validation.miou(model, ctx)
        logger.info("iter %d/%d val mIoU %.2f on %d images (side %d, no CRF)", iteration,
                    cfg.max_iter, 100 * miou, len(self.validation.names),
                    self.validation.side)
        return {VAL_COLUMN: miou}

    def loss(self, net, batch, cfg, ctx, dtype):
        with autocast(dtype, batch["image"].device):
            z = net(batch["image"])
        total, seed, constrain = seg_loss(z, batch["label"], batch["image41"].cpu(),
                                          num_samples=cfg.batch_size, crf=self.crf,
                                          num_classes=describe(cfg).num_classes)
        terms = torch.stack([total, seed, constrain]).detach()
        return total, all_reduce_sum(terms, ctx)


def training_crf_batch(cfg, ctx):
    """The CRFs of this process's share of a batch: images at the label side (label[::8])."""
    return CRFBatch(images=-(-cfg.batch_size // ctx.world_size),
                    side=len(range(0, cfg.crop_size, LABEL_STRIDE)),
                    labels=describe(cfg).num_classes,
                    iterations=CRF_ITERATIONS)


def run(cfg):
    """Train for ``max_iter`` iterations; return the final checkpoint's path."""
    train(cfg, SegTraining())
    return os.path.join(model_dir(cfg), f"model_iter_{cfg.max_iter}.pth")
