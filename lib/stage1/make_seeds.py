"""Initial seeds from the baseline classifier's CAMs (the published ``ini_seed/base_30_bg``).

Per image with tags T (input side ``resize``): each c in T claims CAM[c-1] > fg_thresh (0.30)
x its max; the saliency of ``sdnet_path`` says background where the full-size saliency / 255,
zoomed to h x h in float32, is below bg_thresh (0.06); claims are painted by the area rule of
recipe 5 (larger first, so smaller regions win; then boat/train pixels that are background go
back to 0); the rest is C + 1 (unlabeled; VOC 21). Masks are zoomed to image size and written
as 8-bit grey PNGs of raw values, by the seed-inference path that stage 2 uses
(lib/seeds/inference.py): several processes, atomic files, reruns skip finished images.
"""
import os

from lib.network.classifier import CLASSIFIER_KEYS, classifier_from_config
from lib.seeds.inference import CLASS_MAP_KEYS, SeedModel, infer_seeds
from lib.seeds.writer import OutputSettings


# The config keys this step reads: one given on the command line that is not among them
# changes nothing here (lib.cli says so).
CONFIG_KEYS = frozenset({
    "amp", "backbone", "bg_thresh", "cfg_name", "channels_last", "checkpoint", "conv5_dilation",
    "cue_file", "dataset_name", "dataset_root", "device", "fg_thresh", "ignore_conflict",
    "init", "max_iter", "mean", "num_processes", "num_worker", "overwrite", "resize",
    "sal_thresh", "save_model_path", "sdnet_path", "seed_out_path", "std", "test_batch_size",
    "width_mult",
})


def seed_dir(cfg):
    """Where the seeds go: ``seed_out_path``, else ``<dataset_root>/ini_seed/<seed_subdir>``
    (the folder SGAN's training reads)."""
    return cfg.seed_out_path or os.path.join(cfg.dataset_root, "ini_seed", cfg.seed_subdir)


class ClassifierSeeds(SeedModel):
    """The classifier's CAMs."""

    name = "make_seeds"
    attends_to_saliency = False  # no attention: only the background saliency is read
    record_keys = tuple(k for k in CLASS_MAP_KEYS if k not in ("sal_subdir", "sal_thresh"))
    network_keys = CLASSIFIER_KEYS
    retry_hint = "or write elsewhere with another seed_subdir or seed_out_path"

    def network(self, cfg):
        return classifier_from_config(cfg)

    def class_maps(self, model, image, sal, cfg):
        return model.forward_cam(image)


def output_settings(cfg):
    """Threshold seeds at ``fg_thresh`` into :func:`seed_dir`."""
    return OutputSettings(seed_dir=seed_dir(cfg), seed_mode="threshold",
                          cam_thresh=cfg.fg_thresh, threshold_key="fg_thresh",
                          ignore_conflict=cfg.ignore_conflict)


def run(cfg):
    """Write a seed PNG for every image of the tags file; return the output folder.

    Images whose PNG exists are skipped unless ``overwrite`` is true.
    """
    settings = output_settings(cfg)
    infer_seeds(cfg, ClassifierSeeds(), settings)
    return settings.seed_dir
