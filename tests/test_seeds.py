import os

import numpy as np
import pytest
import scipy.ndimage as nd

from conftest import DATA, GOLDEN_VOC
from lib.dataset.tags import save_tags
from lib.dataset.voc12_sgan import VOC12SalInferDataset, saliency_background
from lib.image import write_jpg, write_png
from lib.seeds.threshold import seed_to_image_size, seeds_from_cams
from lib.voc import UNLABELED

TIES = os.path.join(DATA, "seeds_ties.npz")
TIE_SIDE = 41  # the golden tie cases are at feature size 41 (S = 321)


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


@pytest.fixture(scope="module")
def ties():
    with np.load(TIES) as golden:
        return {key: golden[key] for key in golden.files}


def test_tie_cases_hold_exact_ties_that_other_arithmetic_moves(ties):
    """The golden tie cases prove something: background cells whose exact value is 0.06 (the
    float32 and float64 roundings put many on opposite sides), and equal non-zero areas."""
    at_threshold = moved = equal_areas = 0
    for i, name in enumerate(ties["names"]):
        sal = ties["sal_" + name]
        factors = (TIE_SIDE / sal.shape[0], TIE_SIDE / sal.shape[1])
        small32 = nd.zoom(sal.astype(np.float32) / np.float32(255), factors, order=1)
        small64 = nd.zoom(sal.astype(np.float64) / 255.0, factors, order=1)
        at_threshold += int((np.abs(small64 - 0.06) < 1e-12).sum())
        moved += int(((small32 < np.float32(0.06)) != (small64 < 0.06)).sum())
        bg = saliency_background(sal, TIE_SIDE)
        areas = [int(bg.sum())] + [int((m > 0.25 * m.max()).sum())
                                   for m in ties["maps"][i][ties["tags_" + name] - 1]]
        areas = [a for a in areas if a]
        equal_areas += len(areas) - len(set(areas))
    assert at_threshold > 100 and moved > 100 and equal_areas > 10


def test_tie_seeds_equal_the_published_ones(ties):
    """recipe 5 steps 2-5 on exact ties: float32 background, np.argsort(areas)[::-1] paint order."""
    for i, name in enumerate(ties["names"]):
        sal = ties["sal_" + name]
        bg = saliency_background(sal, TIE_SIDE)
        mask = seeds_from_cams(ties["maps"][i], ties["tags_" + name], bg, 0.25)
        np.testing.assert_array_equal(mask, ties["masks"][i], err_msg=name)
        full = seed_to_image_size(mask, sal.shape)
        np.testing.assert_array_equal(full, ties["full_" + name], err_msg=name)


def test_equal_areas_paint_in_the_published_argsort_order():
    """Background and a class region of equal area overlap: np.argsort(areas)[::-1] paints
    the background last, so it wins (a stable descending sort would let the class win)."""
    bg = np.zeros((4, 8), bool)
    bg[:2, :4] = True
    maps = _maps(4, 8, {2: (0, 2, 2, 6)})  # area 8 like bg; overlap at columns 2-3
    areas = np.zeros(21)
    areas[[0, 2]] = 8
    order = [k for k in np.argsort(areas)[::-1] if areas[k] > 0]
    stable = [k for k in np.argsort(-areas, kind="stable") if areas[k] > 0]
    assert order == [2, 0] and stable == [0, 2]
    mask = seeds_from_cams(maps, [2], bg, 0.25)
    assert (mask[:2, 2:4] == 0).all() and (mask[:2, :2] == 0).all() and (mask[:2, 4:6] == 2).all()


def test_tie_seeds_through_the_inference_dataset(ties, tmp_path):
    """The inference dataset's ``bg`` (sal/<sdnet_path>, bg_thresh) gives the published seeds;
    the attention saliency (sal/<sal_subdir>) is another folder and changes nothing there."""
    names = [str(n) for n in ties["names"]]
    for name in names:
        sal = ties["sal_" + name]
        image = np.zeros(sal.shape + (3,), np.uint8)
        write_jpg(str(tmp_path / "JPEGImages" / f"{name}.jpg"), image)
        write_png(str(tmp_path / "sal" / "background" / f"{name}.png"), sal)
        write_png(str(tmp_path / "sal" / "attention" / f"{name}.png"), np.full_like(sal, 255))
    save_tags({n: ties["tags_" + n] for n in names}, str(tmp_path / "tags.pkl"))
    dataset = VOC12SalInferDataset(str(tmp_path), "tags.pkl", new_size=8 * TIE_SIDE - 7,
                                   sal_subdir="attention", bg_subdir="background")
    for i, name in enumerate(names):
        item = dataset[dataset.names.index(name)]
        assert item["sal"].sum() == (TIE_SIDE - 2) ** 2  # the attention map, all salient
        mask = seeds_from_cams(ties["maps"][i], dataset.tags[name], item["bg"].numpy(), 0.25)
        np.testing.assert_array_equal(mask, ties["masks"][i], err_msg=name)
        full = seed_to_image_size(mask, item["size"].numpy())
        np.testing.assert_array_equal(full, ties["full_" + name], err_msg=name)


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


def test_the_region_threshold_is_rounded_as_numpy_1_rounded_it():
    """0.3 x 6.369617 is 1.9108851 when the product is taken in float64 and rounded to
    float32 (the published code under NumPy 1) but 1.9108852 in float32 (NumPy 2): a pixel
    of exactly 1.9108852 is the tag's under the published arithmetic."""
    peak, edge = np.float32(6.369617), np.float32(1.9108852)
    assert np.float32(0.3) * peak == edge  # NumPy 2's own product would exclude the pixel
    maps = np.zeros((20, 2, 2), np.float32)
    maps[0] = [[peak, edge], [0, 0]]
    mask = seeds_from_cams(maps, [1], np.zeros((2, 2), bool), cam_thresh=0.3)
    assert mask.tolist() == [[1, 1], [21, 21]]
