"""The stage-3 training sample (recipe 11.2, 12, 13) on the synthetic VOC tree, small sizes.

The expected samples are rebuilt here independently of the dataset, from the documented
draws: ``default_rng((random_seed, index))`` gives mirror, then h_off and w_off (one
``integers`` call), then the distortions.
"""
import os
import shutil

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lib.dataset.distort import random_distort
from lib.dataset.tags import load_tags
from lib.dataset.voc12_seg import VOC12SegDataset, check_seg_files
from lib.errors import UserError
from lib.image import read_label_png, write_png
from lib.normalisation import normalise_on_device
from lib.voc import BGR_MEAN

RESIZE, CROP = 73, 65
SEED = 7


@pytest.fixture(scope="module")
def names(synth_voc):
    """The tree's 10 training images: those with tags and initial seeds."""
    return sorted(load_tags(os.path.join(synth_voc, "im_tags.pkl")))


@pytest.fixture(scope="module")
def seed_dir(synth_voc):
    return os.path.join(synth_voc, "ini_seed", "base_30_bg")


def make(synth_voc, names, label_dir, **kwargs):
    return VOC12SegDataset(synth_voc, names, label_dir, resize=RESIZE, crop_size=CROP, **kwargs)


def expected_sample(root, name, label, index, mirror=True, distort=True):
    """(uint8 crop, uint8 label crop) of sample ``index``, built from recipe 11.2 by hand."""
    image = cv2.imread(os.path.join(root, "JPEGImages", name + ".jpg"), cv2.IMREAD_COLOR)
    image = cv2.resize(image, (RESIZE, RESIZE), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label.astype(np.uint8), (RESIZE, RESIZE), interpolation=cv2.INTER_NEAREST)
    rng = np.random.default_rng((SEED, index))
    mirrored = rng.random() < 0.5
    h_off, w_off = rng.integers(0, RESIZE - CROP + 1, size=2)
    image = image[h_off:h_off + CROP, w_off:w_off + CROP].copy()
    label = label[h_off:h_off + CROP, w_off:w_off + CROP]
    if distort:
        image = random_distort(image, rng)
    if mirror and mirrored:
        image, label = image[:, ::-1], label[:, ::-1]
    return image, label, mirrored


def assert_item_is(item, image, label, mean=BGR_MEAN):
    """The item holds exactly the float32 Caffe arithmetic of this uint8 crop and label."""
    caffe = image.astype(np.float32) - np.asarray(mean, np.float32)  # float32 - float32 mean
    np.testing.assert_array_equal(item["image"].numpy(), caffe.transpose(2, 0, 1))
    np.testing.assert_array_equal(item["label"].numpy(), label[::8, ::8])
    np.testing.assert_array_equal(item["image41"].numpy(), image[::8, ::8])


def test_item_contract(synth_voc, names, seed_dir):
    dataset = make(synth_voc, names, seed_dir, max_iters=30)
    assert len(dataset) == 30  # 10 names repeated to cover 30 samples
    item = dataset[13]
    assert item["name"] == names[3]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, CROP, CROP)
    assert item["label"].dtype == torch.int64 and item["label"].shape == (9, 9)
    assert item["image41"].dtype == torch.uint8 and item["image41"].shape == (9, 9, 3)
    assert int(item["label"].max()) <= 21


def test_item_is_the_published_sample(synth_voc, names, seed_dir):
    """image = distorted, cropped, mirrored uint8 minus the mean (float32, CHW); label and
    image41 are its [::8, ::8]; both mirror draws occur."""
    dataset = make(synth_voc, names, seed_dir)
    mirrors = set()
    for index, name in enumerate(names[:8]):
        seed = read_label_png(os.path.join(seed_dir, name + ".png"))
        image, label, mirrored = expected_sample(synth_voc, name, seed, index)
        assert_item_is(dataset[index], image, label)
        mirrors.add(bool(mirrored))
    assert mirrors == {False, True}


def test_uint8_items_normalise_on_device(synth_voc, names, seed_dir):
    plain = make(synth_voc, names, seed_dir)[3]
    raw = make(synth_voc, names, seed_dir, normalise=False)[3]
    assert raw["image"].dtype == torch.uint8 and raw["image"].shape == (CROP, CROP, 3)
    np.testing.assert_array_equal(raw["image"][::8, ::8].numpy(), raw["image41"].numpy())
    dataset = make(synth_voc, names, seed_dir)
    on_device = normalise_on_device(raw["image"][None], dataset.mean)[0]
    np.testing.assert_array_equal(on_device.numpy(), plain["image"].numpy())


def test_mirror_and_crop_move_image_and_label_together(synth_voc, names, seed_dir):
    """mirror=False is the same crop unmirrored; distort=False the same crop undistorted."""
    both = make(synth_voc, names, seed_dir)
    still = make(synth_voc, names, seed_dir, mirror=False, distort=False)
    flipped = 0
    for index in range(len(names)):
        seed = read_label_png(os.path.join(seed_dir, names[index] + ".png"))
        image, label, mirrored = expected_sample(synth_voc, names[index], seed, index,
                                                 mirror=False, distort=False)
        assert_item_is(still[index], image, label)
        item = both[index]
        expected_label = label[:, ::-1] if mirrored else label
        np.testing.assert_array_equal(item["label"].numpy(), expected_label[::8, ::8])
        flipped += bool(mirrored)
    assert 0 < flipped < len(names)


def test_distort_changes_pixels_not_geometry(synth_voc, names, seed_dir):
    distorted = make(synth_voc, names, seed_dir)
    plain = make(synth_voc, names, seed_dir, distort=False)
    changed = 0
    for index in range(len(names)):
        a, b = distorted[index], plain[index]
        np.testing.assert_array_equal(a["label"].numpy(), b["label"].numpy())
        changed += not torch.equal(a["image"], b["image"])
    assert changed > 0


def test_full_crop_has_no_offset(synth_voc, names, seed_dir):
    dataset = VOC12SegDataset(synth_voc, names, seed_dir, resize=CROP, crop_size=CROP,
                              mirror=False, distort=False)
    image = cv2.imread(os.path.join(synth_voc, "JPEGImages", names[0] + ".jpg"))
    image = cv2.resize(image, (CROP, CROP), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(dataset[0]["image41"].numpy(), image[::8, ::8])


def test_crop_larger_than_resize_is_a_user_error(synth_voc, names, seed_dir):
    with pytest.raises(UserError, match="crop_size 97"):
        VOC12SegDataset(synth_voc, names, seed_dir, resize=RESIZE, crop_size=97)


def test_samples_depend_on_index_only(synth_voc, names, seed_dir):
    """Same index -> same sample, whatever the order of access or the loader's workers."""
    dataset = make(synth_voc, names, seed_dir, max_iters=18)
    forward = [dataset[i] for i in range(6)]
    backward = [make(synth_voc, names, seed_dir, max_iters=18)[i] for i in reversed(range(6))]
    for a, b in zip(forward, backward[::-1]):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    loader = DataLoader(dataset, batch_size=3, num_workers=2)
    batches = [batch for batch, _ in zip(loader, range(2))]
    stacked = torch.cat([batch["image"] for batch in batches])
    assert torch.equal(stacked, torch.stack([item["image"] for item in forward]))
    # index 10 is name 0 again, with draws of its own
    assert not torch.equal(dataset[10]["image"], forward[0]["image"])


def test_strong_names_take_the_ground_truth(synth_voc, names, seed_dir):
    strong = names[:4]
    dataset = make(synth_voc, names, seed_dir, strong_names=strong)
    seeds_only = make(synth_voc, names, seed_dir)
    for index in range(6):
        name = names[index]
        if name in strong:
            gt = read_label_png(os.path.join(synth_voc, "SegmentationClassAug", name + ".png"))
            assert (gt == 255).any()
            label = np.where(gt == 255, 21, gt)
        else:
            label = read_label_png(os.path.join(seed_dir, name + ".png"))
        image, label, _ = expected_sample(synth_voc, name, label, index)
        assert_item_is(dataset[index], image, label)
    assert not torch.equal(dataset[0]["label"], seeds_only[0]["label"])


@pytest.fixture
def seed_copy(tmp_path, seed_dir):
    folder = tmp_path / "seeds"
    shutil.copytree(seed_dir, folder)
    return str(folder)


def one_line_error(call, *expected):
    with pytest.raises(UserError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and all(part in message for part in expected), message
    return message


def test_bad_seed_value_is_a_one_line_error(synth_voc, names, seed_copy):
    path = os.path.join(seed_copy, names[2] + ".png")
    seed = read_label_png(path).copy()
    seed[0, 0] = 22
    write_png(path, seed)
    dataset = make(synth_voc, names, seed_copy)
    one_line_error(lambda: dataset[2], path, "22")
    check_seg_files(make(synth_voc, names[:2], seed_copy))
    one_line_error(lambda: check_seg_files(dataset), "1 of 10", path, "22")


def test_missing_seed_is_a_one_line_error(synth_voc, names, seed_copy):
    path = os.path.join(seed_copy, names[5] + ".png")
    os.remove(path)
    dataset = make(synth_voc, names, seed_copy)
    one_line_error(lambda: dataset[5], path)
    one_line_error(lambda: check_seg_files(dataset), "1 label missing", path)


def test_bad_ground_truth_value_is_reported(synth_voc, names, seed_dir, tmp_path):
    gt_dir = tmp_path / "gt"
    shutil.copytree(os.path.join(synth_voc, "SegmentationClassAug"), gt_dir)
    path = str(gt_dir / (names[1] + ".png"))
    gt = read_label_png(path).copy()
    gt[0, 0] = 21  # a seed's "unlabeled", not a ground-truth value
    write_png(path, gt)
    dataset = make(synth_voc, names, seed_dir, strong_names=names[:2], gt_dir=str(gt_dir))
    one_line_error(lambda: dataset[1], path, "21")
    one_line_error(lambda: check_seg_files(dataset), path, "21")
    check_seg_files(make(synth_voc, names, seed_dir, strong_names=names[:2]))


def test_missing_image_is_reported(synth_voc, names, seed_dir):
    dataset = make(synth_voc, names + ["2099_999999"], seed_dir)
    one_line_error(lambda: check_seg_files(dataset), "1 image missing", "2099_999999.jpg")
    one_line_error(lambda: dataset[len(names)], "2099_999999.jpg")
