import os

import numpy as np
import pytest

from conftest import DATA, GOLDEN_VOC
from lib.dataset.voc12_sgan import VOC12SalInferDataset
from lib.seeds.threshold import seed_to_image_size, seeds_from_cams
from lib.voc import UNLABELED


@pytest.mark.parametrize("h", [9, 41])
def test_seeds_equal_the_published_ones(h):
    golden = np.load(os.path.join(DATA, f"seeds_h{h}.npz"))
    dataset = VOC12SalInferDataset(GOLDEN_VOC, "im_tags.pkl", new_size=8 * h)
    for i, name in enumerate(golden["names"]):
        item = dataset[dataset.names.index(name)]
        mask = seeds_from_cams(golden["maps"][i], dataset.tags[name], item["bg"].numpy(), 0.25)
        np.testing.assert_array_equal(mask, golden["masks"][i], err_msg=name)
        full = seed_to_image_size(mask, item["size"].numpy())
        np.testing.assert_array_equal(full, golden["full_" + name], err_msg=name)


def _maps(h, w, regions):
    """Class maps that are 1 on each class's rectangle, 0 elsewhere."""
    maps = np.zeros((20, h, w), np.float32)
    for c, (r0, r1, c0, c1) in regions.items():
        maps[c - 1, r0:r1, c0:c1] = 1
    return maps


def test_smaller_regions_paint_last_and_win():
    bg = np.zeros((6, 6), bool)
    bg[:, 5] = True
    maps = _maps(6, 6, {3: (0, 6, 0, 4), 8: (1, 3, 1, 3)})  # cat inside a bird
    mask = seeds_from_cams(maps, [3, 8], bg, 0.25)
    assert (mask[1:3, 1:3] == 8).all()
    assert mask[0, 0] == 3 and mask[5, 3] == 3
    assert (mask[:, 5] == 0).all() and (mask[:, 4] == UNLABELED).all()


def test_background_larger_than_class_is_painted_over_by_the_class():
    bg = np.ones((6, 6), bool)
    maps = _maps(6, 6, {12: (2, 4, 2, 4)})
    mask = seeds_from_cams(maps, [12], bg, 0.25)
    assert (mask[2:4, 2:4] == 12).all() and mask.sum() == 12 * 4


def test_boat_and_train_on_background_go_back_to_zero():
    bg = np.zeros((6, 6), bool)
    bg[:3] = True
    maps = _maps(6, 6, {4: (0, 6, 0, 2), 19: (0, 6, 4, 6), 12: (0, 6, 2, 3)})
    mask = seeds_from_cams(maps, [4, 19, 12], bg, 0.25)
    assert (mask[:3, :2] == 0).all() and (mask[3:, :2] == 4).all()
    assert (mask[:3, 4:] == 0).all() and (mask[3:, 4:] == 19).all()
    assert (mask[:, 2] == 12).all()  # other classes keep background pixels they won


def test_unlabeled_where_nothing_claims_and_threshold_is_relative():
    maps = np.zeros((20, 4, 4), np.float32)
    maps[0] = np.arange(16).reshape(4, 4)  # max 15, threshold 3.75
    mask = seeds_from_cams(maps, [1], np.zeros((4, 4), bool), 0.25)
    np.testing.assert_array_equal(mask.ravel() == 1, np.arange(16) > 3.75)
    assert (mask.ravel()[:4] == UNLABELED).all()


def test_ignore_conflict_marks_contested_pixels_unlabeled():
    bg = np.zeros((4, 4), bool)
    bg[0] = True
    maps = _maps(4, 4, {2: (0, 2, 0, 4), 5: (1, 4, 0, 4)})
    mask = seeds_from_cams(maps, [2, 5], bg, 0.25, ignore_conflict=True)
    assert (mask[0] == UNLABELED).all()   # bg and class 2
    assert (mask[1] == UNLABELED).all()   # classes 2 and 5
    assert (mask[2:] == 5).all()


def test_full_size_zoom_is_nearest():
    mask = np.array([[1, 2], [3, 21]], np.uint8)
    full = seed_to_image_size(mask, (5, 7))
    assert full.shape == (5, 7) and set(np.unique(full)) == {1, 2, 3, 21}
