"""Semi-supervised SGAN (recipe 12): with strong_list, which target each image gets in stage 2
(the seed branch) and stage 3 (the segmentation network), the checks of the ground truth, the
resume rule for gt_path, and one run of each training script."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from lib.config import SCHEMA, ConfigError, load_config
from lib.dataset.tags import load_tags
from lib.dataset.voc12_seg import VOC12SegDataset
from lib.dataset.voc12_sgan import VOC12ClsSalDataset
from lib.errors import UserError
from lib.files import read_names, write_names
from lib.image import read_label_png, write_png
from lib.stage2.train_sgan import SGANTraining
from lib.stage3.train_seg import SegTraining
from lib.tooling.synthetic import generate_dataset
from lib.training.checkpointing import load_train_state
from lib.voc import IGNORE, SEED_IGNORE, UNLABELED

SGAN = os.path.join(REPO, "config", "sgan_vgg16_321x321.yml")
SEG = os.path.join(REPO, "config", "seg_deeplabv2_vgg16.yml")
STRONG_LIST = "ImageSets/Segmentation/strong.txt"  # 8 of the tree's 10 training images
SGAN_SMALL = {"resize": 65, "batch_size": 3, "num_worker": 0, "pretrain": None,
              "width_mult": 0.125, "max_iter": 2, "display_step": 1}
SEG_SMALL = {"seg_resize": 73, "crop_size": 65, "batch_size": 2, "num_worker": 0,
             "seg_pretrain": None, "max_iter": 2, "display_step": 1}


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    """A synthetic VOC tree of 10 training images: 8 in the strong list, 2 weak."""
    root = tmp_path_factory.mktemp("semi") / "voc"
    generate_dataset(str(root), num_images=12, min_size=48, max_size=96, seed=2)
    write_names(str(root / STRONG_LIST), sorted(load_tags(str(root / "im_tags.pkl")))[:8])
    return root


@pytest.fixture(scope="module")
def split(voc):
    strong = read_names(str(voc / STRONG_LIST))
    weak = sorted(set(load_tags(str(voc / "im_tags.pkl"))) - set(strong))
    assert len(strong) == 8 and len(weak) == 2
    return strong, weak


def ground_truth(voc, name):
    return read_label_png(str(voc / "SegmentationClassAug" / f"{name}.png"))


def ground_truth_as_seeds(voc, folder, mapping=None):
    """Every name's ground truth written as a grey seed PNG into ``folder`` (values mapped)."""
    folder.mkdir(exist_ok=True)
    for png in (voc / "SegmentationClassAug").iterdir():
        label = ground_truth(voc, png.stem)
        write_png(str(folder / png.name), mapping(label) if mapping else label)
    return folder


def sgan_cfg(voc, **extra):
    return load_config(SGAN, {"dataset_root": str(voc), **SGAN_SMALL, **extra})


def test_stage2_seed_branch_targets_ground_truth_or_nothing(voc, split, tmp_path):
    strong, weak = split
    semi = SGANTraining().build_dataset(sgan_cfg(voc, strong_list=STRONG_LIST))
    weakly = SGANTraining().build_dataset(sgan_cfg(voc))
    # The initial-seed path fed the ground truth as seeds: what a strong name must get.
    seeds_dir = ground_truth_as_seeds(voc, tmp_path / "gt_as_seed")
    gt_as_seed = VOC12ClsSalDataset(str(voc), "im_tags.pkl", seed_subdir=str(seeds_dir),
                                    **SGANTraining.sample_options(sgan_cfg(voc)))
    assert semi.strong_names == frozenset(strong) and weakly.strong_names is None
    checked = set()
    for index in range(len(semi)):
        item, initial = semi[index], weakly[index]
        name = item["name"]
        for key in ("image", "label", "sal", "size"):  # everything else unchanged
            assert torch.equal(item[key], initial[key]), key
        if name in weak:
            assert (initial["seed"] != SEED_IGNORE).any()  # it had an initial seed ...
            assert (item["seed"] == SEED_IGNORE).all()     # ... and has no target now
        else:
            assert torch.equal(item["seed"], gt_as_seed[index]["seed"])
            assert not torch.equal(item["seed"], initial["seed"])
            classes = set(np.unique(ground_truth(voc, name)).tolist()) - {0, IGNORE}
            values = set(item["seed"].unique().tolist())
            assert values <= {c - 1 for c in classes} | {SEED_IGNORE} and len(values) > 1
        checked.add(name)
    assert checked == set(semi.names)


def test_stage2_semi_supervised_reads_no_initial_seed(voc, tmp_path):
    copy = tmp_path / "voc"
    shutil.copytree(voc, copy)
    shutil.rmtree(copy / "ini_seed")
    semi = SGANTraining().build_dataset(sgan_cfg(copy, strong_list=STRONG_LIST))
    assert len(semi[0]["seed"]) == 9
    with pytest.raises(UserError, match="seed map"):
        SGANTraining().build_dataset(sgan_cfg(copy))


def one_line_error(call, *parts, kind=UserError):
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and all(p in message for p in parts), message


def test_stage2_checks_the_strong_list_and_its_ground_truth(voc, split, tmp_path):
    strong, _ = split
    copy = tmp_path / "voc"
    shutil.copytree(voc, copy)

    def build(**extra):
        return SGANTraining().build_dataset(sgan_cfg(copy, **{"strong_list": STRONG_LIST,
                                                              **extra}))

    one_line_error(lambda: build(strong_list="nowhere.txt"), "'strong_list'", "nowhere.txt",
                   kind=ConfigError)
    (copy / "other.txt").write_text("2099_999999\n")
    one_line_error(lambda: build(strong_list="other.txt"), "2099_999999", "im_tags.pkl")
    bad = copy / "SegmentationClassAug" / f"{strong[1]}.png"
    label = ground_truth(copy, strong[1]).copy()
    label[0, 0] = 30
    write_png(str(bad), label)
    one_line_error(build, str(bad), "30")
    os.unlink(copy / "SegmentationClassAug" / f"{strong[0]}.png")
    one_line_error(build, "ground truth", "missing", f"{strong[0]}.png")
    one_line_error(lambda: build(gt_path="nowhere"), "8 ground truths missing")


def test_resume_refuses_another_gt_path_only_with_strong_list(voc, tmp_path):
    for strong_list, refused in ((STRONG_LIST, True), (None, False)):
        cfg = sgan_cfg(voc, strong_list=strong_list)
        state = tmp_path / "train_state.pth"
        torch.save({"config": {key: cfg[key] for key in SCHEMA}}, state)
        moved = sgan_cfg(voc, strong_list=strong_list, gt_path="SegmentationClass/")
        if refused:
            one_line_error(lambda: load_train_state(str(state), moved), "'gt_path'")
        else:
            _, changes = load_train_state(str(state), moved)
            assert changes == ["gt_path 'SegmentationClassAug/' -> 'SegmentationClass/'"]


def seg_cfg(voc, **extra):
    return load_config(SEG, {"dataset_root": str(voc),
                             "seed_dir": str(voc / "ini_seed" / "base_30_bg"),
                             **SEG_SMALL, **extra})


def test_stage3_labels_ground_truth_for_strong_names_seeds_for_the_others(voc, split, tmp_path):
    strong, weak = split
    cfg = seg_cfg(voc, strong_list=STRONG_LIST)
    semi = SegTraining().build_dataset(cfg)
    options = {"resize": cfg.seg_resize, "crop_size": cfg.crop_size, "distort": cfg.distort,
               "max_iters": cfg.max_iter * cfg.batch_size, "random_seed": cfg.random_seed,
               "normalise": False}
    seeds_only = VOC12SegDataset(str(voc), semi.names, cfg.seed_dir, **options)
    gt_dir = ground_truth_as_seeds(voc, tmp_path / "gt",
                                   lambda gt: np.where(gt == IGNORE, UNLABELED, gt))
    gt_as_seeds = VOC12SegDataset(str(voc), semi.names, str(gt_dir), **options)
    assert semi.strong_names == frozenset(strong)
    differs = 0
    for index, name in enumerate(semi.names):
        label = semi[index]["label"]
        expected = (gt_as_seeds if name in strong else seeds_only)[index]["label"]
        assert torch.equal(label, expected), name
        differs += name in strong and not torch.equal(label, seeds_only[index]["label"])
        assert torch.equal(semi[index]["image"], seeds_only[index]["image"])
    assert differs >= len(strong) // 2 and set(weak) < set(semi.names)


def run_tool(script, cwd, *args):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", script), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def overrides(values):
    return [f"{key}={'null' if value is None else value}" for key, value in values.items()]


@pytest.mark.parametrize("script, cfg_file, small", [
    ("stage2/train_sgan.py", SGAN, SGAN_SMALL), ("stage3/train_seg.py", SEG, SEG_SMALL)])
def test_each_training_script_runs_with_strong_list(voc, tmp_path, script, cfg_file, small):
    args = ["--cfg_file", cfg_file, f"dataset_root={voc}", f"strong_list={STRONG_LIST}",
            f"seed_dir={voc / 'ini_seed' / 'base_30_bg'}", "cfg_name=semi",
            *overrides(small)]
    result = run_tool(script, tmp_path, *args)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "model" / "semi"
    log = (run_dir / "train.log").read_text()
    assert "10 images, 8 with ground truth (strong_list)" in log, log
    assert (run_dir / "model_iter_2.pth").is_file()
    assert load_config(str(run_dir / "config.yml")).strong_list == STRONG_LIST
