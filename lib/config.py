"""Configuration: one validated, attribute-style object from YAML plus ``key=value`` overrides.

Every key this repository knows is declared once in ``SCHEMA`` with its type and default.
The paper's keys default to the paper's values (recipe 10); keys this repository adds
default to values that keep the paper's behaviour. Unknown keys and wrong types are errors
that name the key.
"""
import difflib
import os
import re

import yaml

from lib.dataset.description import VOC12, dataset_description
from lib.errors import ConfigError

_NUM = (int, float)
AUTO = "auto"  # a value of crf_workers: the code chooses (lib.crf.workers)


class Config(dict):
    """A dict whose keys are also attributes (``cfg.lr``)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value


def _choice(*options):
    return ("choice", options)


# key: (type, default). Types: str, bool, int, float ("number"), "floats" (list of numbers),
# "ints" (list of integers), _choice(...), and a tuple (T, None) for "T or null".
SCHEMA = {
    # ---- the paper's keys (recipe 10) ----
    "cfg_name": (str, "sgan_vgg16_321x321_snet"),
    "dataset_name": (str, "voc12_sgan"),
    "dataset_root": (str, "data/VOC2012"),
    "gt_path": (str, VOC12.seed_gt),  # unset: the seeds' ground truth of dataset_name
    "sal_subdir": (str, "sal_snet"),
    "sal_thresh": (float, 0.06),
    "seed_subdir": (str, "base_30_bg"),
    "sdnet_path": (str, "sal_snet"),  # inference: the saliency of the seeds' background
    "cue_file": (str, "im_tags.pkl"),
    "batch_size": (int, 15),
    "num_worker": (int, 8),
    "resize": (int, 321),
    "use_sal": (bool, True),
    "mean": ("floats", [104.008, 116.669, 122.675]),
    "std": (("floats", None), None),
    "backbone": (_choice("vgg16"), "vgg16"),
    "pretrain": ((str, None), "vgg_init.pth"),
    "max_iter": (int, 8000),
    "step_size": (int, 2000),
    "display_step": (int, 50),
    "lr": (float, 0.001),
    "power": (float, 0.9),
    "weight_decay": (float, 0.0005),
    "seed_loss_ratio": (float, 0.15),
    "save_model_path": (str, "model/"),
    "test_cfg": (str, "_seedcam_0.25"),
    "new_size": (int, 321),  # read by nothing, as published (inference takes resize)
    "res_path": (str, "result"),
    "cam_thresh": (float, 0.25),
    "ignore_conflict": (bool, False),
    "combine_seedseg": (bool, True),
    "num_classes": (int, VOC12.seed_classes),  # unset: C + 2 of dataset_name (VOC 22, COCO 82)
    "bg_thresh": (float, 0.06),  # seeds' background: saliency of sdnet_path / 255 below this
    # ---- keys this repository adds (defaults keep the paper's behaviour) ----
    "random_seed": (int, 7),
    "device": (str, "auto"),
    "conv5_dilation": (int, 1),
    "width_mult": (float, 1.0),
    "init": (_choice("pytorch", "kaiming"), "pytorch"),
    "checkpoint": ((str, None), None),
    "test_batch_size": (int, 1),
    "overwrite": (bool, False),
    # stages 1-2: the published multi-label soft margin, or the balanced sigmoid cross-entropy
    # the SGAN authors describe for COCO (recipe 14.2)
    "cls_loss": (_choice("soft_margin", "balanced_bce"), "soft_margin"),
    # ---- processes, precision, resume ----
    "num_processes": (int, 0),
    "amp": (_choice("off", "bf16", "fp16"), "off"),
    "channels_last": (bool, False),
    "resume": ((bool, str), False),
    # ---- stage 1 (baseline classifier and initial seeds) ----
    "fg_thresh": (float, 0.30),
    "seed_out_path": ((str, None), None),
    # ---- CRF seeds and inference outputs ----
    "seed_mode": (_choice("threshold", "crf"), "threshold"),
    "crf_alpha_low": (float, 4.0),
    "crf_alpha_high": (float, 32.0),
    "crf_scale": (float, 1.0),
    "crf_iterations": (int, 10),
    "crf_workers": ((_choice(AUTO), int), AUTO),
    "save_class_maps": (bool, False),
    "save_pictures": (bool, False),
    # ---- stage 3: the segmentation network on the seeds (recipe 11, 13) ----
    "seed_dir": (str, "result/sgan_vgg16_321x321_snet_seedcam_0.25"),
    "seg_pretrain": ((str, None), "vgg16_deeplab_init.pth"),
    "seg_backbone": (_choice("vgg16", "resnet101"), "vgg16"),
    "seg_resize": (int, 353),
    "crop_size": (int, 321),
    "distort": (bool, True),
    "lr_step": (int, 2000),
    "lr_gamma": (float, 0.33),
    "test_scales": ("ints", [288, 385, 481]),
    "seg_crf": (bool, True),
    "restrict_to_tags": (bool, False),
    "split": (str, "val"),
    "strong_list": ((str, None), None),
    "val_every": (int, 0),  # score the network on val_list every N iterations (0 = never)
    "val_list": ((str, None), None),  # default: the list of split
    "val_max_images": (int, 0),  # score only the list's first N images (0 = all)
}

# Keys read only after training (seed making and evaluation) or that do not change the
# weights training produces: a run that differs from another only in these trained the same.
# (gt_path trains too when strong_list is set: after_training_keys.)
AFTER_TRAINING_KEYS = frozenset({
    "gt_path", "sdnet_path", "bg_thresh", "test_cfg", "new_size", "res_path", "cam_thresh",
    "ignore_conflict", "combine_seedseg", "num_classes", "checkpoint", "test_batch_size",
    "overwrite", "display_step", "num_worker", "fg_thresh", "seed_out_path", "seed_mode",
    "crf_alpha_low", "crf_alpha_high", "crf_scale", "crf_iterations", "crf_workers",
    "save_class_maps", "save_pictures", "test_scales", "seg_crf", "restrict_to_tags", "split",
    "val_every", "val_list", "val_max_images",
})



def after_training_keys(cfg):
    """AFTER_TRAINING_KEYS of a run with configuration ``cfg``: without ``gt_path`` when
    ``strong_list`` is set, since training then reads the ground truth (recipe 12)."""
    return AFTER_TRAINING_KEYS - {"gt_path"} if cfg["strong_list"] else AFTER_TRAINING_KEYS


# Keys that say how and where a training runs, not what it computes: with AFTER_TRAINING_KEYS
# (which already holds num_worker, display_step, overwrite, checkpoint) the only keys that may
# differ when a run resumes from its train_state.pth. cfg_name and save_model_path name where
# the outputs go (resume=PATH may continue a run into a new folder).
RUN_TIME_KEYS = frozenset({
    "resume", "device", "num_processes", "step_size", "channels_last", "cfg_name",
    "save_model_path",
})


def _type_name(spec):
    if isinstance(spec, tuple) and spec and spec[0] == "choice":
        return "one of " + ", ".join(spec[1])
    if isinstance(spec, tuple):
        return " or ".join(_type_name(s) for s in spec)
    if spec is None:
        return "null"
    if spec == "floats":
        return "a list of numbers"
    if spec == "ints":
        return "a list of integers"
    return {str: "a string", bool: "true/false", int: "an integer", float: "a number"}[spec]


def _coerce(key, spec, value):
    """Return ``value`` checked against ``spec``; raise ConfigError naming ``key``."""
    if isinstance(spec, tuple) and spec and spec[0] == "choice":
        if value in spec[1]:
            return value
    elif isinstance(spec, tuple):
        for option in spec:
            try:
                return _coerce(key, option, value)
            except ConfigError:
                pass
    elif spec is None:
        if value is None:
            return None
    elif spec == "floats":
        if isinstance(value, list) and value and all(
                isinstance(v, _NUM) and not isinstance(v, bool) for v in value):
            return [float(v) for v in value]
    elif spec == "ints":
        if isinstance(value, list) and value and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            return list(value)
    elif spec is float:
        if isinstance(value, _NUM) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif spec is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, spec):
        return value
    raise ConfigError(f"config key '{key}': expected {_type_name(spec)}, got {value!r}")


# A path value may start from the dataset's folder: "{dataset_root}/ini_seed/base_30_bg" follows
# whatever dataset_root the file or an override gives.
DATASET_ROOT_FIELD = "{dataset_root}"


def parse_override(text):
    """Split ``key=value`` and type the value by YAML rules (``lr=0.01`` is a float)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override '{text}': expected key=value")
    if DATASET_ROOT_FIELD in raw:  # a path, not a YAML flow mapping
        return key.strip(), raw
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"override '{text}': value is not valid YAML") from None
    return key.strip(), value


def load_config(path=None, overrides=()):
    """Return the validated Config of YAML file ``path`` (may be None) with ``overrides``.

    ``overrides`` are ``key=value`` strings or a dict. The result's ``cfg_file`` entry holds
    the file it came from, its ``given_keys`` entry the keys the file or the overrides set (the
    others hold their defaults).
    """
    values = {}
    if path is not None:
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {path}")
        try:
            with open(path) as f:
                loaded = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: expected a mapping of keys to values")
        values.update(loaded or {})
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    values.update(items)

    cfg = Config()
    given = sorted(key for key in values if key in SCHEMA)
    for key, (spec, default) in SCHEMA.items():
        cfg[key] = _coerce(key, spec, values.pop(key)) if key in values else _copy(default)
    if values:
        raise ConfigError(_unknown_keys_line(sorted(values)))
    dataset = dataset_description(cfg.dataset_name)  # a misspelt name: one line
    if "num_classes" not in given:  # the dataset's seeds
        cfg["num_classes"] = dataset.seed_classes
    if "gt_path" not in given:
        cfg["gt_path"] = dataset.seed_gt
    for key, value in cfg.items():
        if isinstance(value, str) and key != "dataset_root":
            cfg[key] = value.replace(DATASET_ROOT_FIELD, cfg.dataset_root)
    _check_ranges(cfg)
    cfg["cfg_file"] = path
    cfg["given_keys"] = given
    return cfg


def derived_config(cfg, **values):
    """A validated copy of ``cfg`` with ``values`` replaced (same file of origin)."""
    derived = load_config(None, {**{key: cfg[key] for key in SCHEMA}, **values})
    derived["cfg_file"] = cfg.get("cfg_file")
    derived["given_keys"] = sorted(set(cfg.get("given_keys", ())) | set(values))
    return derived


def _unknown_keys_line(keys):
    """One line for unknown keys: the first, the nearest valid key if one is close, the count."""
    nearest = difflib.get_close_matches(keys[0], SCHEMA, n=1, cutoff=0.7)
    return (f"unknown config key '{keys[0]}'"
            + (f" (did you mean '{nearest[0]}'?)" if nearest else "")
            + (f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""))


def _copy(value):
    return list(value) if isinstance(value, list) else value


DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]+)?"


def _check_ranges(cfg):
    dataset = dataset_description(cfg.dataset_name)  # a typo: one line with the nearest name
    num_classes = (dataset.num_classes, dataset.seed_classes)
    checks = [
        ("cam_thresh", 0 < cfg.cam_thresh < 1, "must be in (0, 1)"),
        ("sal_thresh", 0 <= cfg.sal_thresh < 1, "must be in [0, 1)"),
        ("bg_thresh", 0 <= cfg.bg_thresh <= 1, "must be in [0, 1]"),
        ("batch_size", cfg.batch_size >= 1, "must be >= 1"),
        ("test_batch_size", cfg.test_batch_size >= 1, "must be >= 1"),
        ("num_worker", cfg.num_worker >= 0, "must be >= 0"),
        ("num_processes", cfg.num_processes >= 0, "must be >= 0 (0 = one per visible GPU)"),
        ("num_classes", cfg.num_classes in num_classes,
         f"must be {num_classes[0]} (segmentation) or {num_classes[1]} (seeds, with "
         f"unlabeled) for dataset_name {cfg.dataset_name}"),
        ("max_iter", cfg.max_iter >= 1, "must be >= 1"),
        ("step_size", cfg.step_size >= 1, "must be >= 1"),
        ("display_step", cfg.display_step >= 1, "must be >= 1"),
        ("resize", cfg.resize >= 8, "must be >= 8"),
        ("mean", len(cfg.mean) == 3, "must have 3 values"),
        ("std", cfg.std is None or (len(cfg.std) == 3 and min(cfg.std) > 0),
         "must be null or 3 positive values"),
        ("width_mult", 0 < cfg.width_mult <= 1, "must be in (0, 1]"),
        ("conv5_dilation", cfg.conv5_dilation >= 1, "must be >= 1"),
        ("fg_thresh", 0 < cfg.fg_thresh < 1, "must be in (0, 1)"),
        ("crf_workers", cfg.crf_workers == AUTO or cfg.crf_workers >= 0, "must be auto or >= 0"),
        ("crop_size", cfg.crop_size >= 9 and (cfg.crop_size - 1) % 8 == 0,
         "must be 8k + 1 (321, 65 ...): the network's output side is then the label's "
         "label[::8] side"),
        ("seg_resize", cfg.seg_resize >= cfg.crop_size, "must be >= crop_size"),
        ("lr_step", cfg.lr_step >= 1, "must be >= 1"),
        ("val_every", cfg.val_every >= 0, "must be >= 0 (0 = no validation)"),
        ("val_max_images", cfg.val_max_images >= 0, "must be >= 0 (0 = the whole list)"),
        ("lr_gamma", 0 < cfg.lr_gamma <= 1, "must be in (0, 1]"),
        ("test_scales", min(cfg.test_scales) >= 8, "must be sides >= 8"),
        ("device", re.fullmatch(DEVICE_PATTERN, cfg.device), "must be auto, cpu, cuda or cuda:N"),
    ]
    for key, ok, why in checks:
        if not ok:
            raise ConfigError(f"config key '{key}' {why}, got {cfg[key]!r}")


def save_config(cfg, path, keys=None):
    """Write ``cfg`` as YAML so a run can be repeated: ``keys`` (default all; e.g. the keys a
    step reads), in SCHEMA's order."""
    from lib.files import atomic_write_bytes
    data = {key: cfg[key] for key in SCHEMA if keys is None or key in keys}
    atomic_write_bytes(path, yaml.safe_dump(data, sort_keys=False).encode())
