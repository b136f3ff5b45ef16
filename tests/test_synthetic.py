"""Tests of the synthetic VOC2012-format generator (lib/tooling/synthetic.py) and its CLI."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from lib.dataset.tags import load_tags
from lib.tooling.synthetic import draw_image_size, generate_dataset, split_train_val
from lib.voc import VOC_PALETTE

REPO_ROOT = Path(__file__).resolve().parents[1]
NUM_IMAGES = 10
MIN_SIZE, MAX_SIZE = 33, 97


def _files(root):
    """Relative path -> bytes of every file under ``root``."""
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _read_sample(root, name):
    """Image, saliency, initial seed (None for a held-out image) and ground truth."""
    image = cv2.imread(str(root / "JPEGImages" / f"{name}.jpg"), cv2.IMREAD_UNCHANGED)
    sal = cv2.imread(str(root / "sal" / "sal_snet" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    seed = cv2.imread(str(root / "ini_seed" / "base_30_bg" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    gt = np.array(Image.open(root / "SegmentationClassAug" / f"{name}.png"))
    return image, sal, seed, gt


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    names = generate_dataset(root, num_images=NUM_IMAGES, min_size=MIN_SIZE, max_size=MAX_SIZE, seed=3)
    return root, names


def test_names_and_lists(dataset):
    root, names = dataset
    assert names == [f"2099_{i:06d}" for i in range(NUM_IMAGES)]
    lists = root / "ImageSets" / "Segmentation"
    read = lambda f: (lists / f).read_text().split()
    train, val = read("train.txt"), read("val.txt")
    assert val == [names[4], names[9]]
    assert sorted(train + val) == names and not set(train) & set(val)
    assert read("train_aug.txt") == train  # the held-out images are in no training file
    assert not [p for p in root.rglob(".tmp-*")], "temporary files left behind"


def test_split_small_lists():
    assert split_train_val(["a"]) == (["a"], [])
    assert split_train_val(["a", "b", "c"]) == (["a", "b"], ["c"])


def test_same_seed_is_byte_identical_and_other_seed_differs(dataset, tmp_path):
    root, _ = dataset
    generate_dataset(tmp_path / "again", num_images=NUM_IMAGES, min_size=MIN_SIZE, max_size=MAX_SIZE, seed=3)
    assert _files(tmp_path / "again") == _files(root)
    generate_dataset(tmp_path / "other", num_images=NUM_IMAGES, min_size=MIN_SIZE, max_size=MAX_SIZE, seed=4)
    other = _files(tmp_path / "other")
    jpgs = [k for k in other if k.endswith(".jpg")]
    assert len(jpgs) == NUM_IMAGES
    assert all(other[k] != _files(root)[k] for k in jpgs)


def test_image_does_not_depend_on_dataset_size(dataset, tmp_path):
    root, _ = dataset
    generate_dataset(tmp_path, num_images=6, min_size=MIN_SIZE, max_size=MAX_SIZE, seed=3)
    for name in ("2099_000000", "2099_000002"):
        for rel in (f"JPEGImages/{name}.jpg", f"SegmentationClassAug/{name}.png",
                    f"ini_seed/base_30_bg/{name}.png", f"sal/sal_snet/{name}.png"):
            assert (tmp_path / rel).read_bytes() == (root / rel).read_bytes(), rel


def _classes(gt):
    return np.setdiff1d(np.unique(gt), [0, 255])


def test_file_formats_and_sizes(dataset):
    root, names = dataset
    val = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    for name in names:
        image, sal, seed, gt = _read_sample(root, name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        height, width = image.shape[:2]
        assert MIN_SIZE <= height <= MAX_SIZE and MIN_SIZE <= width <= MAX_SIZE
        assert height != width, "images must never be square"
        assert (seed is None) == (name in val), "initial seeds of the training images only"
        for grey in [sal] if seed is None else [sal, seed]:
            assert grey.dtype == np.uint8 and grey.shape == (height, width)
        pil_gt = Image.open(root / "SegmentationClassAug" / f"{name}.png")
        assert pil_gt.mode == "P"
        assert pil_gt.getpalette()[:3 * 21] == VOC_PALETTE[:21].ravel().tolist()
        assert gt.shape == (height, width)
        assert 255 in gt and 0 in gt and len(_classes(gt))
        same = np.array(Image.open(root / "SegmentationClass" / f"{name}.png"))
        assert np.array_equal(same, gt)
    sizes = {_read_sample(root, n)[0].shape[:2] for n in names}
    assert len(sizes) > NUM_IMAGES // 2, "image sizes should vary"


def test_image_sizes_are_never_square():
    rng = np.random.default_rng(0)
    sizes = {draw_image_size(rng, 40, 42) for _ in range(500)}
    assert sizes == {(h, w) for h in (40, 41, 42) for w in (40, 41, 42) if h != w}


def test_ignore_band_separates_labels(dataset):
    root, names = dataset
    for name in names:
        gt = _read_sample(root, name)[3]
        band = gt == 255
        for a, b in ((gt[:, :-1], gt[:, 1:]), (gt[:-1, :], gt[1:, :])):
            touching = (a != 255) & (b != 255)
            assert np.array_equal(a[touching], b[touching]), f"{name}: labels meet without a band"
        # The band is thin: mostly 2-3 px, so it stays a minority of the object pixels.
        assert 0 < band.sum() < 0.6 * np.count_nonzero(gt), name


def test_tags_match_ground_truth_of_the_training_images(dataset):
    root, names = dataset
    tags = load_tags(root / "im_tags.pkl")
    train = (root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    assert sorted(tags) == train and len(train) == NUM_IMAGES - 2  # no held-out image
    json_tags = load_tags(root / "im_tags.json")
    assert sorted(json_tags) == train
    seen = set()
    for name in train:
        expected = _classes(_read_sample(root, name)[3])
        assert tags[name].dtype == np.int64
        assert np.array_equal(tags[name], expected)
        assert np.array_equal(json_tags[name], expected)
        assert 1 <= len(tags[name]) <= 3
        seen.update(tags[name].tolist())
    assert len(seen) >= 5, "several classes should appear"
    assert any(len(t) > 1 for t in tags.values()), "some images should hold several objects"


def test_seeds_are_small_precise_parts_of_objects(dataset):
    root, _ = dataset
    for name in sorted(load_tags(root / "im_tags.pkl")):
        _, _, seed, gt = _read_sample(root, name)
        assert set(np.unique(seed)) - {0} == set(_classes(gt).tolist()), name
        for cls in _classes(gt):
            at_seed = gt[seed == cls]
            assert np.isin(at_seed, [cls, 255]).all(), f"{name}: seed {cls} leaves its object"
            coverage = at_seed.size / np.count_nonzero(gt == cls)
            assert 0.03 < coverage < 0.4, f"{name}: seed {cls} covers {coverage:.2f} of its object"


def test_saliency_highlights_objects(dataset):
    root, names = dataset
    for name in names:
        _, sal, _, gt = _read_sample(root, name)
        foreground = sal[(gt > 0) & (gt < 255)].astype(float)
        background = sal[gt == 0].astype(float)
        assert foreground.mean() > 180 and background.mean() < 30
        assert background.max() > 0, "background saliency should not be all zero"
        assert np.median(background) < 0.06 * 255


def test_class_subset(tmp_path):
    generate_dataset(tmp_path, num_images=6, min_size=MIN_SIZE, max_size=MAX_SIZE, classes=[3, 7])
    tags = load_tags(tmp_path / "im_tags.pkl")
    assert set(np.concatenate(list(tags.values())).tolist()) <= {3, 7}


@pytest.mark.parametrize("kwargs", [
    {"num_images": 0}, {"min_size": 80, "max_size": 80}, {"min_size": 10},
    {"classes": [0, 3]}, {"classes": [21]}, {"sal_subdir": "../x"}, {"classes": []},
])
def test_bad_arguments_raise(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_dataset(tmp_path, **kwargs)


def _run_cli(*args):
    return subprocess.run([sys.executable, "tools/make_synthetic_voc.py", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_end_to_end(tmp_path):
    root = tmp_path / "cli"
    result = _run_cli("--root", str(root), "--num_images", "4", "--min_size", "40", "--max_size", "60",
                      "--classes", "2,5,9", "--sal_subdir", "sal_x", "--seed_subdir", "seed_y")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1 and "4" in result.stdout
    assert len(list((root / "JPEGImages").glob("*.jpg"))) == 4
    assert len(list((root / "sal" / "sal_x").glob("*.png"))) == 4
    assert len(list((root / "ini_seed" / "seed_y").glob("*.png"))) == 3  # the training images
    tags = load_tags(root / "im_tags.pkl")
    assert set(np.concatenate(list(tags.values())).tolist()) <= {2, 5, 9}
    in_process = tmp_path / "in_process"
    generate_dataset(in_process, num_images=4, min_size=40, max_size=60, classes=[2, 5, 9],
                     sal_subdir="sal_x", seed_subdir="seed_y")
    assert _files(in_process) == _files(root), "the CLI and the library must write the same bytes"


@pytest.mark.parametrize("bad", [["--classes", "1,x"], ["--classes", "0,25"], ["--num_images", "0"],
                                 ["--min_size", "90", "--max_size", "50"]])
def test_cli_bad_option_is_one_line_error(tmp_path, bad):
    result = _run_cli("--root", str(tmp_path / "bad"), *bad)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert not os.path.exists(tmp_path / "bad" / "JPEGImages")
