"""Train the stage-3 segmentation network on the seeds (SPEC 11) with the shared loop.

DeepLab-v2 from ``seg_pretrain``, the names of ``cue_file`` with their seeds from ``seed_dir``
(names of ``strong_list`` with their ground truth, SPEC 12), Caffe's distortions and crops,
the balanced seed loss plus the constrain loss through the training-time dense CRF (the CRFs
of a batch in ``crf_workers`` processes, equal to the serial ones), Caffe's SGD with the step
schedule. Checkpoints ``<save_model_path>/<cfg_name>/model_iter_<N>.pth``; resume as stage 2.
"""
import os

import torch

from lib.config import ConfigError
from lib.crf.batch import BatchCRF
from lib.dataset.strong import strong_names, strong_note
from lib.dataset.tags import load_tags
from lib.dataset.voc12_seg import VOC12SegDataset, check_seg_files
from lib.losses import seg_loss
from lib.network.deeplab import deeplab_from_config, load_initial_weights
from lib.optim import build_caffe_sgd, step_lr
from lib.paths import dataset_path, model_dir
from lib.stage3.normalisation import check_input_scale, training_normalisation
from lib.stage3.validation import VAL_COLUMN, Validation
from lib.training.distributed import all_reduce_sum
from lib.training.loop import TrainingTask, train
from lib.training.runtime import autocast, usable_workers


class SegTraining(TrainingTask):
    """DeepLab-v2 on seeds: seed loss + constrain loss, Caffe's SGD."""

    name = "train_seg"
    term_names = ("loss", "seed", "constrain")
    pretrain_key = "seg_pretrain"

    def __init__(self):
        self.crf = None
        self.validation = None

    def network(self, cfg):
        return deeplab_from_config(cfg)

    def load_pretrained(self, model, path, logger):
        kept = load_initial_weights(model, path)
        if kept and logger is not None:
            logger.info("%s holds a backbone alone (as stage 1's vgg_init.pth): %s start from "
                        "their initialisation", path, ", ".join(kept))

    def build_dataset(self, cfg):
        check_input_scale(cfg)  # before anything is written
        if not os.path.isdir(cfg.seed_dir):
            raise ConfigError(f"config key 'seed_dir': folder not found: {cfg.seed_dir} (the "
                              f"seeds infer_cam writes)")
        names = sorted(load_tags(dataset_path(cfg, cfg.cue_file)))
        dataset = VOC12SegDataset(
            cfg.dataset_root, names, cfg.seed_dir, resize=cfg.seg_resize,
            crop_size=cfg.crop_size, mirror=True, distort=cfg.distort, mean=cfg.mean,
            strong_names=strong_names(cfg, names) or (), gt_dir=cfg.gt_path,
            max_iters=cfg.max_iter * cfg.batch_size, random_seed=cfg.random_seed,
            normalise=False)  # uint8 images, normalised on the device
        check_seg_files(dataset)
        self.validation = Validation(cfg) if cfg.val_every else None
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
        workers = usable_workers(cfg.crf_workers, ctx)
        self.crf = BatchCRF(workers if workers > 1 else 0)  # one worker only adds transfers

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
                                          num_samples=cfg.batch_size, crf=self.crf)
        terms = torch.stack([total, seed, constrain]).detach()
        return total, all_reduce_sum(terms, ctx)


def run(cfg):
    """Train for ``max_iter`` iterations; return the final checkpoint's path."""
    train(cfg, SegTraining())
    return os.path.join(model_dir(cfg), f"model_iter_{cfg.max_iter}.pth")
