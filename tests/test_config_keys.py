"""Each pipeline step declares the config keys it reads (CONFIG_KEYS), and so do the evaluation
and the threshold curve: a key given on the command line that it does not read is a warning,
and a training run's config.yml holds its step's keys only. The declarations are checked
against what the steps really read."""
import os
import shlex
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from lib.cli import OVERRIDE, unread_overrides
from lib.config import SCHEMA, Config, load_config
from lib.evaluation import curve, score
from lib.stage1 import make_seeds, train_cls
from lib.stage2 import infer_cam, train_sgan
from lib.stage3 import infer_seg, train_seg
from lib.tooling.synthetic import generate_dataset

# Functions that copy or check the whole configuration: their reads are no step's.
WHOLE_CONFIG = {"derived_config", "save_config", "_check_ranges", "load_config", "changed_keys",
                "_save", "<dictcomp>"}


@pytest.fixture
def reads(monkeypatch):
    """The SCHEMA keys read from any Config while the test runs (not by WHOLE_CONFIG)."""
    keys = set()
    getitem, get = Config.__getitem__, Config.get

    def recording_getitem(self, key):
        frame = sys._getframe(1)
        if frame.f_code.co_name == "__getattr__":
            frame = frame.f_back
        if key in SCHEMA and frame.f_code.co_name not in WHOLE_CONFIG:
            keys.add(key)
        return getitem(self, key)

    def recording_get(self, key, *default):
        if key in SCHEMA:
            keys.add(key)
        return get(self, key, *default)

    monkeypatch.setattr(Config, "__getitem__", recording_getitem)
    monkeypatch.setattr(Config, "get", recording_get)
    return keys


def _cfg(name, **overrides):
    return load_config(os.path.join(REPO, "config", name), overrides)


def test_every_step_reads_only_its_declared_keys(tmp_path, reads):
    root = str(tmp_path / "voc")
    generate_dataset(root, num_images=5, min_size=33, max_size=41, seed=4)
    common = {"dataset_root": root, "num_worker": 0, "save_model_path": str(tmp_path / "m"),
              "res_path": str(tmp_path / "r"), "width_mult": 0.125, "max_iter": 1,
              "step_size": 1, "batch_size": 2, "resize": 33}
    steps = [
        (train_cls, "cls_vgg16_321x321.yml", {"pretrain": None}),
        (make_seeds, "cls_vgg16_321x321.yml", {"seed_out_path": str(tmp_path / "s1")}),
        (train_sgan, "sgan_vgg16_321x321.yml", {"pretrain": None}),
        (infer_cam, "sgan_vgg16_321x321.yml", {}),
        (infer_cam, "sgan_vgg16_321x321.yml", {"seed_mode": "crf", "test_cfg": "_crf",
                                               "save_class_maps": True, "save_pictures": True}),
        (train_seg, "seg_deeplabv2_vgg16.yml", {
            "seg_pretrain": None, "init": "kaiming", "seg_resize": 41, "crop_size": 33,
            "test_scales": [33], "val_every": 1,
            "seed_dir": str(tmp_path / "r" / "sgan_vgg16_321x321_snet_seedcam_0.25")}),
        (infer_seg, "seg_deeplabv2_vgg16.yml", {"test_scales": [33], "split": "train",
                                                "restrict_to_tags": True}),
    ]
    for step, cfg_file, overrides in steps:
        cfg = _cfg(cfg_file, **{**common, **overrides})
        reads.clear()
        step.run(cfg)
        assert reads <= step.CONFIG_KEYS, (step.__name__, sorted(reads - step.CONFIG_KEYS))
    seeds = _cfg("sgan_vgg16_321x321.yml", **common, test_cfg="_crf")  # with its class maps
    labels = _cfg("seg_deeplabv2_vgg16.yml", **common, split="train")  # infer_seg's above
    for cfg, keys in ((seeds, score.SEED_KEYS), (labels, score.SEGMENTATION_KEYS)):
        reads.clear()
        score.run(cfg, workers=0, from_file=True)
        assert reads <= keys == score.config_keys(cfg), sorted(reads - keys)
    reads.clear()
    curve.run(seeds, ["0.25"], workers=0, from_file=True)
    assert reads <= curve.CONFIG_KEYS, sorted(reads - curve.CONFIG_KEYS)
    for name, step in (("cls_vgg16_321x321", train_cls), ("sgan_vgg16_321x321_snet", train_sgan),
                       ("seg_deeplabv2_vgg16", train_seg)):
        record = yaml.safe_load((tmp_path / "m" / name / "config.yml").read_text())
        assert list(record) == [key for key in SCHEMA if key in step.CONFIG_KEYS], name
    assert "cam_thresh" not in record and "resize" not in record  # stage 2's, not DeepLab's


def test_a_key_the_step_does_not_read_is_a_warning_line(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "stage3", "infer_seg.py"), "--cfg_file",
         os.path.join(REPO, "config", "seg_deeplabv2_vgg16.yml"), f"dataset_root={tmp_path}",
         "save_pictures=true", "seg_crf=false", "cam_thresh=0.3", "save_pictures=false"],
        cwd=tmp_path, capture_output=True, text=True)
    lines = result.stderr.strip().splitlines()
    assert lines[0] == ("warning: infer_seg does not read config keys save_pictures, cam_thresh "
                        "(given on the command line): it changes nothing here")
    assert result.returncode == 2 and len(lines) == 2  # then the run's own one-line error


@pytest.mark.parametrize("script, options, unread", [
    ("eval_mIoU", [], "lr, gt_path, seg_crf, test_cfg"),  # segmentation (the config's 21)
    ("eval_mIoU", ["--num_classes", "22"], "lr, seg_crf, split"),  # seeds
    ("threshold_curve", [], "lr, seg_crf, split"),
])
def test_a_key_the_evaluation_does_not_read_is_a_warning_line(script, options, unread, tmp_path):
    """Seeds are found by test_cfg and scored against gt_path, segmentation results by their
    split and against SegmentationClass/; lr and seg_crf change no score."""
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", f"{script}.py"), "--cfg_file",
         os.path.join(REPO, "config", "seg_deeplabv2_vgg16.yml"), "lr=5",
         f"dataset_root={tmp_path}", *options, "gt_path=G", "seg_crf=false",
         "test_cfg=_seedcam_0.6", "split=val", "lr=4", "--workers", "0"],
        cwd=tmp_path, capture_output=True, text=True)
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (f"warning: {script} does not read config keys {unread} (given on the "
                        f"command line): it changes nothing here")
    assert result.returncode == 2 and len(lines) == 2  # then the run's own one-line error


def test_no_command_of_the_readme_walkthrough_gives_a_key_it_does_not_read():
    """README's "First day" commands, their shell variables expanded: every key=value is one the
    script reads, so none prints a warning line."""
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read().split("### First day: the three stages by hand")[1]
    steps = {f"tools/{module.__name__.split('.', 1)[1].replace('.', '/')}.py": module
             for module in (train_cls, make_seeds, train_sgan, infer_cam, train_seg, infer_seg)}
    variables, checked = {}, []
    for line in text.split("```bash\n")[1].split("```")[0].replace("\\\n", " ").splitlines():
        if not line.startswith("python"):
            variables.update(w.split("=", 1) for w in shlex.split(line, comments=True))
            continue
        words = [part for word in shlex.split(line) for part in
                 (variables[word[1:]].split() if word.startswith("$") else [word])]
        overrides = [word for word in words if OVERRIDE.match(word)]
        script = words[1]
        if script in steps:
            keys = steps[script].CONFIG_KEYS
        elif script == "tools/eval_mIoU.py":
            cfg_file = os.path.join(REPO, words[words.index("--cfg_file") + 1])
            keys = score.config_keys(load_config(cfg_file, overrides))
        elif script == "tools/threshold_curve.py":
            keys = curve.CONFIG_KEYS
        else:
            continue
        assert unread_overrides(overrides, keys) == [], line
        checked.append(script)
    assert len(checked) == 11, checked
