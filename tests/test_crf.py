"""CRF seeds (recipe 6): the recipe as written, edge following, degenerate maps, settings."""
import cv2
import numpy as np
import pydensecrf.densecrf as dcrf
import pytest
import scipy.ndimage as nd

from lib.config import ConfigError, load_config
from lib.seeds.crf import class_probabilities, crf_settings, seeds_from_crf
from lib.seeds.threshold import seed_to_image_size, seeds_from_cams
from lib.voc import UNLABELED

H, W, FEAT = 96, 112, 12


def _scene(objects, noise=6, seed=0):
    """An RGB image of flat-coloured ellipses on a green background, with noise, and its
    ground truth. ``objects``: (class, centre, axes, angle, colour) tuples."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((H, W), np.uint8)
    image = np.empty((H, W, 3), np.float64)
    image[:] = (70, 110, 60)
    for cls, centre, axes, angle, colour in objects:
        cv2.ellipse(gt, centre, axes, angle, 0, 360, cls, -1)
        image[gt == cls] = colour
    image = np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)
    return image, gt


def _blurred_maps(gt, classes, offset=0.05):
    """CAM-like maps at feature size: each class's mask blurred past its edge, shrunk, and
    shifted down so that far-away cells are negative."""
    maps = np.zeros((20, FEAT, FEAT), np.float32)
    for c in classes:
        blob = cv2.GaussianBlur((gt == c).astype(np.float32), (0, 0), 6)
        maps[c - 1] = cv2.resize(blob, (FEAT, FEAT), interpolation=cv2.INTER_AREA) - offset
    return maps


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_crf_seeds_follow_the_object_edge_better_than_threshold_seeds():
    image, gt = _scene([(8, (56, 44), (30, 18), 20, (220, 60, 40))])
    maps = _blurred_maps(gt, [8])
    bg = cv2.resize(cv2.GaussianBlur((gt > 0).astype(np.float32), (0, 0), 4), (FEAT, FEAT),
                    interpolation=cv2.INTER_AREA) < 0.06
    threshold = seed_to_image_size(seeds_from_cams(maps, [8], bg, 0.25), (H, W))
    crf = seeds_from_crf(maps, [8], image)
    assert crf.shape == (H, W) and crf.dtype == np.uint8
    assert set(np.unique(crf)) <= {0, 8, UNLABELED}
    crf_iou, threshold_iou = _iou(crf == 8, gt == 8), _iou(threshold == 8, gt == 8)
    assert crf_iou > 0.95 and crf_iou > threshold_iou + 0.15
    # confident background is really background, and most of it is labelled
    assert not (crf == 0)[gt == 8].any() and (crf == 0)[gt == 0].mean() > 0.8


def test_two_objects_keep_their_classes():
    image, gt = _scene([(3, (30, 30), (18, 14), 0, (220, 60, 40)),
                        (15, (80, 66), (20, 16), 30, (40, 60, 220))])
    crf = seeds_from_crf(_blurred_maps(gt, [3, 15]), [15, 3], image)
    for c in (3, 15):
        assert _iou(crf == c, gt == c) > 0.9, c


def _reference_seed(maps, tags, image, alpha_low, alpha_high, scale, iterations):
    """recipe 6 spelled out with scipy and pydensecrf directly."""
    size = image.shape[:2]
    probs = []
    for c in tags:
        relu = np.maximum(maps[c - 1].astype(np.float64), 0)
        unit = relu / relu.max() if relu.max() > 0 else relu
        probs.append(nd.zoom(unit, (size[0] / unit.shape[0], size[1] / unit.shape[1]), order=1))
    probs = np.stack(probs)

    def argmax(alpha):
        stack = np.concatenate([(1 - probs.max(0))[None] ** alpha, probs])
        crf = dcrf.DenseCRF2D(size[1], size[0], len(stack))
        unary = -np.log(np.clip(stack, 1e-5, 1)).reshape(len(stack), -1).astype(np.float32)
        crf.setUnaryEnergy(np.ascontiguousarray(unary))
        crf.addPairwiseGaussian(sxy=3 / scale, compat=3)
        crf.addPairwiseBilateral(sxy=80 / scale, srgb=13, rgbim=np.ascontiguousarray(image),
                                 compat=10)
        return np.array(crf.inference(iterations)).reshape(len(stack), *size).argmax(0)

    low, high = argmax(alpha_low), argmax(alpha_high)
    seed = np.where(low > 0, np.asarray(tags)[np.maximum(low - 1, 0)], UNLABELED)
    seed[high == 0] = 0
    return seed.astype(np.uint8)


@pytest.mark.parametrize("alphas, scale, iterations", [((4, 32), 1.0, 10), ((2, 8), 3.0, 5)])
def test_seeds_follow_the_written_recipe(alphas, scale, iterations):
    image, gt = _scene([(3, (30, 30), (18, 14), 0, (200, 80, 60)),
                        (15, (80, 66), (20, 16), 30, (60, 80, 200))], noise=25, seed=1)
    rng = np.random.default_rng(2)
    maps = _blurred_maps(gt, [3, 15], offset=0.15) + rng.normal(0, 0.05, (20, FEAT, FEAT))
    expected = _reference_seed(maps, [3, 15], image, *alphas, scale, iterations)
    got = seeds_from_crf(maps, [3, 15], image, *alphas, scale, iterations)
    assert {0, 3, 15, UNLABELED} <= set(np.unique(got))
    # float32 (ours) and float64 (reference) probabilities may flip a rare tie in the CRF
    assert (got != expected).mean() < 1e-4


def test_unlabeled_band_lies_between_confident_class_and_background():
    image, gt = _scene([(8, (56, 44), (30, 18), 20, (220, 60, 40))], noise=30)
    crf = seeds_from_crf(_blurred_maps(gt, [8], offset=0.2), [8], image, alpha_low=1,
                         alpha_high=64)
    assert {0, 8, UNLABELED} == set(np.unique(crf))
    near_object = cv2.dilate((gt == 8).astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    assert near_object[crf == UNLABELED].mean() > 0.5


def test_no_positive_class_map_gives_an_all_unlabeled_seed():
    image, gt = _scene([(8, (56, 44), (30, 18), 20, (220, 60, 40))])
    maps = -np.abs(_blurred_maps(gt, [8])) - 1
    assert (seeds_from_crf(maps, [8], image) == UNLABELED).all()
    assert (seeds_from_crf(maps, [], image) == UNLABELED).all()


def test_class_probabilities_are_relu_over_max_zoomed_corner_aligned():
    maps = np.zeros((20, 3, 3), np.float32)
    maps[4] = [[-1, 0, 2], [4, 1, 0], [0, 0, 0]]
    maps[6] = -1  # no positive value: all zero
    probs = class_probabilities(maps, [5, 7], (5, 5))
    assert probs.shape == (2, 5, 5) and probs.dtype == np.float32
    np.testing.assert_allclose(probs[0][::2, ::2], [[0, 0, 0.5], [1, 0.25, 0], [0, 0, 0]])
    assert probs[0, 1, 0] == pytest.approx(0.5)  # halfway between 0 and 1
    assert not probs[1].any()


def test_crf_settings_come_from_the_config_and_are_checked():
    cfg = load_config(None, {"crf_alpha_low": 2, "crf_iterations": 5})
    assert crf_settings(cfg) == {"alpha_low": 2.0, "alpha_high": 32.0, "scale": 1.0,
                                 "iterations": 5}
    for key, value in (("crf_alpha_low", 0), ("crf_alpha_high", 1.0), ("crf_scale", 0),
                       ("crf_iterations", 0), ("crf_workers", -1)):
        with pytest.raises(ConfigError, match=key):
            crf_settings(load_config(None, {key: value}))
    with pytest.raises(ConfigError, match="seed_mode"):
        load_config(None, {"seed_mode": "both"})
    assert load_config(None).seed_mode == "threshold"
