"""Train the baseline classifier and export its backbone as ``vgg_init.pth``.

ImageNet VGG16 (converted by tools/convert_vgg.py) fine-tuned for the dataset's multi-label
classification with SGAN's recipe (recipe 4: SGD, four parameter groups, poly lr) and the
classification loss alone (``cls_loss``: the multi-label soft margin, or the balanced
sigmoid cross-entropy for COCO), in the shared loop of lib/training/loop.py. The published
``vgg_init.pth`` was made this way but never released with its code; ours has its format
(recipe 8).
"""
import os

from lib.dataset.check import check_files
from lib.dataset.description import describe
from lib.dataset.voc12_cls import VOC12ClsDataset
from lib.losses import classification_loss
from lib.network.checkpoint import save_state_dict
from lib.network.classifier import classifier_from_config
from lib.paths import model_dir
from lib.training.distributed import all_reduce_sum
from lib.training.loop import TrainingTask, train
from lib.training.runtime import autocast


# The config keys this step reads: one given on the command line that is not among them
# changes nothing here (lib.cli says so); a run's config.yml records these.
CONFIG_KEYS = frozenset({
    "amp", "backbone", "batch_size", "cfg_name", "channels_last", "cls_loss", "conv5_dilation",
    "cue_file", "dataset_name", "dataset_root", "device", "display_step", "init", "lr",
    "max_iter", "mean", "num_processes", "num_worker", "overwrite", "power", "pretrain",
    "random_seed", "resize", "resume", "save_model_path", "std", "step_size", "weight_decay",
    "width_mult",
})

VGG_INIT_NAME = "vgg_init.pth"


def export_vgg_init(model, path):
    """Write the backbone alone, keys ``conv1_1.weight`` ... ``conv5_3.bias`` (caffe layout)."""
    state = {k: v.detach().cpu().clone() for k, v in model.backbone.state_dict().items()}
    save_state_dict(state, path)


class ClassifierTraining(TrainingTask):
    """The baseline: backbone + classification branch, image tags only."""

    name = "train_cls"
    outputs = (VGG_INIT_NAME,)
    config_keys = CONFIG_KEYS

    def network(self, cfg):
        return classifier_from_config(cfg)

    def build_dataset(self, cfg):
        dataset = VOC12ClsDataset(cfg.dataset_root, cfg.cue_file, description=describe(cfg),
                                  **self.sample_options(cfg))
        check_files(dataset.names, dataset.image_path, {})
        return dataset

    def loss(self, net, batch, cfg, ctx, dtype):
        with autocast(dtype, batch["image"].device):
            score = net(batch["image"])
        loss = classification_loss(score, batch["label"], cfg.batch_size, cfg.cls_loss)
        return loss, all_reduce_sum(loss.detach().reshape(1), ctx)

    def finish(self, model, cfg, ctx, logger):
        if ctx.is_main:
            path = os.path.join(model_dir(cfg), VGG_INIT_NAME)
            export_vgg_init(model, path)
            logger.info("saved %s (backbone for SGAN's pretrain)", path)


def run(cfg):
    """Train for ``max_iter`` iterations; write checkpoints, ``train.log``, ``config.yml`` and,
    at the end, ``vgg_init.pth`` in ``<save_model_path>/<cfg_name>``. Returns its path."""
    train(cfg, ClassifierTraining())
    return os.path.join(model_dir(cfg), VGG_INIT_NAME)
