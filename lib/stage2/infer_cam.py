"""Seed inference with a trained SGAN: class maps -> seed PNGs (recipe 5, or 6 with a CRF),
through the shared seed-inference path of lib/seeds/inference.py."""
from lib.network.sgan import SGAN_KEYS, sgan_from_config
from lib.paths import result_dir
from lib.seeds.crf import crf_settings
from lib.seeds.inference import CLASS_MAP_KEYS, SeedModel, infer_seeds
from lib.seeds.writer import OutputSettings


# The config keys this step reads: one given on the command line that is not among them
# changes nothing here (lib.cli says so).
CONFIG_KEYS = frozenset({
    "amp", "backbone", "bg_thresh", "cam_thresh", "cfg_name", "channels_last", "checkpoint",
    "combine_seedseg", "conv5_dilation", "crf_alpha_high", "crf_alpha_low", "crf_iterations",
    "crf_scale", "crf_workers", "cue_file", "dataset_name", "dataset_root", "device",
    "ignore_conflict", "init", "max_iter", "mean", "num_processes", "num_worker", "overwrite",
    "res_path", "resize", "sal_subdir", "sal_thresh", "save_class_maps", "save_model_path",
    "save_pictures", "sdnet_path", "seed_mode", "std", "test_batch_size", "test_cfg", "use_sal",
    "width_mult",
})


def class_maps(model, image, sal, combine_seedseg):
    """M = cam + seg (``combine_seedseg``) or cam, as float32 (batch x C x h x w)."""
    _, seg, cam = model.forward_cam(image, sal)
    return (cam + seg if combine_seedseg else cam).float()


class SGANSeeds(SeedModel):
    """SGAN's class maps: M = cam + seg (or cam)."""

    name = "infer_cam"
    record_keys = CLASS_MAP_KEYS + ("use_sal", "combine_seedseg")
    network_keys = SGAN_KEYS
    retry_hint = "or write elsewhere with another test_cfg"

    def network(self, cfg):
        return sgan_from_config(cfg)

    def class_maps(self, model, image, sal, cfg):
        return class_maps(model, image, sal, cfg.combine_seedseg)


def output_settings(cfg):
    """The per-image outputs the config asks for (CRF keys checked in crf mode)."""
    return OutputSettings(
        seed_dir=result_dir(cfg), seed_mode=cfg.seed_mode, cam_thresh=cfg.cam_thresh,
        ignore_conflict=cfg.ignore_conflict,
        crf=crf_settings(cfg) if cfg.seed_mode == "crf" else {},
        save_class_maps=cfg.save_class_maps, save_pictures=cfg.save_pictures)


def run(cfg):
    """Write ``<res_path>/<cfg_name><test_cfg>/NAME.png`` for every image of the tags file
    (and ``..._maps/NAME.npz``, ``..._pictures/NAME.png`` if asked); return the seed folder.

    Images whose files all exist are skipped unless ``overwrite`` is true.
    """
    settings = output_settings(cfg)
    infer_seeds(cfg, SGANSeeds(), settings)
    return settings.seed_dir
