"""Where things are: the one rule for relative paths in a configuration, and the folders of
training runs, seeds and segmentation results."""
import os

from lib.config import ConfigError
from lib.dataset.description import list_path

# The one rule for relative paths: keys that name a file or folder of the dataset are relative
# to ``dataset_root``; every other path (dataset_root itself, pretrain, checkpoint,
# save_model_path, res_path, seed_out_path, resume ...) is relative to the working folder.
# Any of them may begin with "{dataset_root}" to follow the dataset (lib.config).
DATASET_KEYS = ("cue_file", "gt_path", "strong_list", "val_list")


def beside(folder, suffix):
    """``<folder><suffix>``: what belongs to an output folder but lies beside it (its record
    ``.record.yml``, its log ``.log``, its class maps ``_maps``), however the folder is written
    (``x/``, ``x/.``)."""
    return os.path.normpath(folder) + suffix


def dataset_path(cfg, path):
    """Resolve a dataset-relative path (the value of a key of DATASET_KEYS) under
    ``dataset_root``; absolute paths stay as they are."""
    return path if os.path.isabs(path) else os.path.join(cfg.dataset_root, path)


def check_dataset_paths(cfg, *keys):
    """Raise a ConfigError naming the key if ``dataset_root`` or a dataset-relative path
    (``cue_file``, ``gt_path``) does not exist."""
    if not os.path.isdir(cfg.dataset_root):
        raise ConfigError(f"config key 'dataset_root': folder not found: {cfg.dataset_root}")
    for key in keys:
        path = dataset_path(cfg, cfg[key])
        if not os.path.exists(path):
            raise ConfigError(f"config key '{key}': not found: {path}")


def model_dir(cfg):
    """``<save_model_path>/<cfg_name>``: checkpoints, training log and saved config."""
    return os.path.join(cfg.save_model_path, cfg.cfg_name)


def result_dir(cfg):
    """``<res_path>/<cfg_name><test_cfg>``: the seed PNGs of infer_cam."""
    return os.path.join(cfg.res_path, cfg.cfg_name + cfg.test_cfg)


def segmentation_dir(cfg):
    """``<res_path>/<cfg_name>_<split>``: stage 3's label PNGs of a split (recipe 11.5)."""
    return os.path.join(cfg.res_path, f"{cfg.cfg_name}_{cfg.split}")


def split_list_path(cfg):
    """``<dataset_root>/ImageSets/Segmentation/<split>.txt``: the names of a split."""
    return list_path(cfg.dataset_root, cfg.split)


def checkpoint_path(cfg):
    """The checkpoint infer_cam loads: ``checkpoint`` or the last ``model_iter_<max_iter>.pth``."""
    return cfg.checkpoint or os.path.join(model_dir(cfg), f"model_iter_{cfg.max_iter}.pth")


# How to make the weights a training run starts from, by config key.
PRETRAIN_HINTS = {
    "pretrain": "stage 1 (tools/stage1/train_cls.py) writes vgg_init.pth, or ",
    "seg_pretrain": "tools/stage3/make_init.py writes it from ImageNet weights, or ",
}


def pretrain_path(cfg, key="pretrain"):
    """The weights a fresh training run starts from (config ``key``: ``pretrain``, or stage 3's
    ``seg_pretrain``), or None; ConfigError if the file is missing."""
    if not cfg[key]:
        return None
    if not os.path.isfile(cfg[key]):
        raise ConfigError(f"config key '{key}': file not found: {cfg[key]} (a relative path is "
                          f"read from the working folder, {os.getcwd()}); "
                          f"{PRETRAIN_HINTS.get(key, '')}{key}= init=kaiming trains from scratch")
    return cfg[key]
