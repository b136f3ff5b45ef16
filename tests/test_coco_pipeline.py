"""MS-COCO 2014 through every script with config/coco/ (recipe 14): the synthetic COCO tree
made by tools/make_coco_labels.py, stage 1 (train_cls, make_seeds), stage 2 (train_sgan,
infer_cam), the seeds scored with 82 classes, stage 3 (train_seg, infer_seg) scored with 81;
only sizes, iterations and folders are overridden. And COCO's bad inputs, each one line."""
import json
import os
import runpy
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from lib.coco import COCO_CLASSES, COCO_PALETTE
from lib.dataset.description import COCO14
from lib.dataset.tags import load_tags, save_tags
from lib.network.checkpoint import read_state_dict
from lib.seeds.threshold import seeds_from_cams
from lib.tooling.synthetic_coco import generate_coco_dataset

COCO = os.path.join(REPO, "config", "coco")
pytestmark = pytest.mark.filterwarnings(  # pycocotools 2.0.11 under NumPy 2, harmless
    "ignore:__array__ implementation doesn.t accept a copy keyword:DeprecationWarning")
# Tiny runs: 33 px inputs (5 x 5 features), networks at 1/8 width, 2 iterations of 2 images.
SMALL = ["width_mult=0.125", "resize=33", "max_iter=2", "batch_size=2",
         "num_worker=0", "display_step=1", "pretrain=", "init=kaiming", "device=cpu"]
SMALL_SEG = ["width_mult=0.125", "seg_resize=41", "crop_size=33", "test_scales=[33,41]",
             "max_iter=2", "batch_size=2", "num_worker=0", "display_step=1", "seg_pretrain=",
             "init=kaiming", "device=cpu", "seg_crf=false"]


def run_script(script, *args):
    """Run tools/<script> with ``args`` as its command line does, in this process (no new
    interpreter and torch import per script); its exit status."""
    saved = sys.argv
    sys.argv = [script, *map(str, args)]
    try:
        runpy.run_path(os.path.join(REPO, "tools", script), run_name="__main__")
    except SystemExit as exit_:
        return exit_.code
    finally:
        sys.argv = saved
    return 0


def names_in(folder):
    return sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".png"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Every step of the COCO pipeline on a 10-image synthetic tree (33..65 px), once: the
    working folder, its dataset root and the output of each step."""
    work = tmp_path_factory.mktemp("coco_pipeline")
    root = work / "coco"
    generate_coco_dataset(root, num_images=10, min_size=33, max_size=65, seed=5)
    outputs = {"root": root, "work": work}
    previous = os.getcwd()
    os.chdir(work)
    try:
        common = [f"dataset_root={root}"]
        seeds1 = "{dataset_root}/ini_seed/stage1"  # beside the generator's initial seeds
        steps = [
            ("make_coco_labels.py", "--dataset_root", root, "--workers", 0),
            ("stage1/train_cls.py", "--cfg_file", f"{COCO}/cls_vgg16_321x321.yml", *common,
             *SMALL),
            ("stage1/make_seeds.py", "--cfg_file", f"{COCO}/cls_vgg16_321x321.yml", *common,
             *SMALL, f"seed_out_path={seeds1}"),
            ("stage2/infer_cam.py", "--cfg_file", f"{COCO}/sgan_vgg16_321x321.yml", *common,
             *SMALL),
            ("eval_mIoU.py", "--dataset_name", "coco14", "--num_classes", 82, "--res_path",
             "result/sgan_vgg16_321x321_coco_seedcam_0.25", "--gt_path",
             root / "SegmentationClass", "--json", "seeds.json"),
            ("stage3/train_seg.py", "--cfg_file", f"{COCO}/seg_deeplabv2_vgg16.yml", *common,
             *SMALL_SEG),
            ("stage3/infer_seg.py", "--cfg_file", f"{COCO}/seg_deeplabv2_vgg16.yml", *common,
             *SMALL_SEG),
            ("eval_mIoU.py", "--cfg_file", f"{COCO}/seg_deeplabv2_vgg16.yml", *common,
             "--json", "seg.json"),
        ]
        for k, (script, *args) in enumerate(steps):
            if script == "stage2/infer_cam.py":  # stage 2's training: the paper's command
                train = subprocess.run(
                    [sys.executable, os.path.join(REPO, "tools", "stage2", "train_sgan.py"),
                     "--cfg_file", f"{COCO}/sgan_vgg16_321x321.yml", *common, *SMALL,
                     "seed_subdir=stage1"], capture_output=True, text=True, timeout=300)
                assert train.returncode == 0, train.stderr[-2000:]
                outputs["train_sgan"] = train.stderr
            assert run_script(script, *args) == 0, script
    finally:
        os.chdir(previous)
    return outputs


def test_labels_lists_and_tags_come_from_the_converter(run):
    root = run["root"]
    assert (root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    assert (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert (root / "im_tags.pkl").is_file() and (root / "SegmentationClass").is_dir()


def test_every_network_has_cocos_classes(run):
    model = run["work"] / "model"
    classifier = read_state_dict(str(model / "cls_vgg16_321x321_coco" / "model_iter_2.pth"))
    assert classifier["fc8.weight"].shape[0] == 80
    assert (model / "cls_vgg16_321x321_coco" / "vgg_init.pth").is_file()
    sgan = read_state_dict(str(model / "sgan_vgg16_321x321_coco" / "model_iter_2.pth"))
    assert sgan["fc8.weight"].shape[0] == sgan["fc9.weight"].shape[0] == 80
    deeplab = read_state_dict(str(model / "seg_deeplabv2_vgg16_coco" / "model_iter_2.pth"))
    assert all(deeplab[f"fc8_{i}.weight"].shape[0] == 81 for i in range(1, 5))
    assert "iter 2/2" in run["train_sgan"]


@pytest.mark.parametrize("folder", ["coco/ini_seed/stage1",
                                    "result/sgan_vgg16_321x321_coco_seedcam_0.25"])
def test_seeds_hold_cocos_classes_and_81_for_unlabeled(run, folder):
    tags = load_tags(run["root"] / "im_tags.pkl", COCO14)
    seeds = run["work"] / folder
    assert names_in(seeds) == sorted(tags)
    values = set()
    for name, classes in tags.items():
        with Image.open(seeds / f"{name}.png") as seed:
            assert seed.mode == "L"
            found = set(np.unique(np.asarray(seed)).tolist())
        assert found <= {0, 81} | set(classes.tolist()), name
        values |= found
    assert 81 in values and values - {0, 81}  # unlabeled, and some of the tags' classes


def test_seeds_are_scored_with_82_classes_and_cocos_names(run):
    scores = json.loads((run["work"] / "seeds.json").read_text())
    assert list(scores["per_class"]) == list(COCO_CLASSES)  # 0..80, unlabeled left out
    assert 0 <= scores["mIoU"] <= 1


def test_segmentation_labels_are_cocos_and_scored_with_81_classes(run):
    root, work = run["root"], run["work"]
    val = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    labels = work / "result" / "seg_deeplabv2_vgg16_coco_val"
    assert names_in(labels) == sorted(val)
    for name in val:
        with Image.open(labels / f"{name}.png") as png:
            assert png.mode == "P" and np.asarray(png).max() <= 80
            palette = np.asarray(png.getpalette()[:3 * 81], np.uint8).reshape(81, 3)
        np.testing.assert_array_equal(palette, COCO_PALETTE[:81])
    scores = json.loads((work / "seg.json").read_text())
    assert list(scores["per_class"]) == list(COCO_CLASSES)
    assert 0 <= scores["mIoU"] <= 1


def test_a_coco_run_labelled_with_vocs_config_reads_its_tags_as_cocos(run, tmp_path):
    """infer_seg with VOC's config (no dataset_name) on a COCO run: the run's coco14 decides
    the classes of the tags of restrict_to_tags too, as it does the network's outputs."""
    root, work = run["root"], run["work"]
    tags = load_tags(root / "im_tags_val.pkl", COCO14)
    (root / "ImageSets" / "Segmentation" / "val_tagged.txt").write_text("\n".join(sorted(tags)))
    checkpoint = work / "model" / "seg_deeplabv2_vgg16_coco" / "model_iter_2.pth"
    code = run_script("stage3/infer_seg.py", "--cfg_file",
                      os.path.join(REPO, "config", "seg_deeplabv2_vgg16.yml"),
                      f"dataset_root={root}", *SMALL_SEG, f"checkpoint={checkpoint}",
                      "restrict_to_tags=true", "cue_file=im_tags_val.pkl", "split=val_tagged",
                      f"res_path={tmp_path}")
    assert code == 0
    labels = tmp_path / "seg_deeplabv2_vgg16_val_tagged"
    assert names_in(labels) == sorted(tags)
    for name, classes in tags.items():
        with Image.open(labels / f"{name}.png") as png:
            assert set(np.unique(np.asarray(png)).tolist()) <= {0} | set(classes.tolist())


def test_the_boat_train_rule_takes_cocos_boat_and_train():
    bg = np.zeros((4, 4), bool)
    bg[:, :2] = True  # 8 cells of background; the class claims 4, half of them background
    for cls in (4, 7, 9, 19):  # COCO: motorcycle, train, boat, horse (VOC's boat and train)
        maps = np.zeros((80, 4, 4), np.float32)
        maps[cls - 1, :2, 1:3] = 1.0
        mask = seeds_from_cams(maps, [cls], bg, 0.25, boat_train=COCO14.boat_train_classes)
        on_background = 0 if cls in (7, 9) else cls  # background only for train and boat
        assert (mask[:2, 1] == on_background).all() and (mask[:2, 2] == cls).all(), cls


def one_line_error(code, err, *words):
    lines = err.strip().splitlines()
    return code == 2 and len(lines) == 1 and all(w in lines[0] for w in words)


def test_bad_coco_inputs_are_one_line(run, tmp_path, capsys):
    root = tmp_path / "coco"
    shutil.copytree(run["root"], root, ignore=shutil.ignore_patterns("ini_seed"))
    cls = ["--cfg_file", f"{COCO}/cls_vgg16_321x321.yml", f"dataset_root={root}", *SMALL,
           f"save_model_path={tmp_path / 'model'}"]
    capsys.readouterr()
    # a misspelt dataset_name: the nearest name
    code = run_script("stage1/train_cls.py", *cls, "dataset_name=coco2014")
    assert one_line_error(code, capsys.readouterr().err, "dataset_name", "did you mean 'coco14'")
    code = run_script("eval_mIoU.py", "--dataset_name", "voc", "--res_path", root,
                      "--gt_path", root / "SegmentationClass")
    assert one_line_error(code, capsys.readouterr().err, "did you mean 'voc12'")
    # a tag above C, naming the file and the image
    save_tags({"COCO_train2014_000000000001": [3, 81]}, str(root / "bad_tags.pkl"))
    code = run_script("stage1/train_cls.py", *cls, "cue_file=bad_tags.pkl")
    assert one_line_error(code, capsys.readouterr().err, "bad_tags.pkl",
                          "'COCO_train2014_000000000001' must be classes in 1..80", "coco14")
    # COCO's tags under VOC's classes: the tags file is refused, not read as VOC's
    code = run_script("stage1/train_cls.py", *cls, "dataset_name=voc12_sgan", "num_classes=22")
    warning, error = capsys.readouterr().err.strip().splitlines()  # num_classes: not read here
    assert warning.startswith("warning: train_cls does not read config key num_classes")
    assert one_line_error(code, error, "must be classes in 1..20")
    # a ground-truth value above C that is not 255 (COCO's labels scored as VOC's)
    code = run_script("eval_mIoU.py", "--num_classes", 22, "--res_path",
                      root / "SegmentationClass", "--gt_path", root / "SegmentationClass",
                      "--workers", 0)
    assert one_line_error(code, capsys.readouterr().err, "SegmentationClass", "outside 0..20 and "
                          "255, the classes of dataset voc12", "--dataset_name")
    # an image of the tags file that is missing, named with its folder
    missing = sorted(load_tags(root / "im_tags.pkl", COCO14))[0]
    (root / "train2014" / f"{missing}.jpg").unlink()
    code = run_script("stage1/train_cls.py", *cls)
    assert one_line_error(code, capsys.readouterr().err, "1 image missing",
                          os.path.join("train2014", f"{missing}.jpg"))
