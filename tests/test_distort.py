"""Caffe's photometric distortions (recipe 11.2 step 3) against the published arithmetic.

tests/data/stage3/distort.npz holds Caffe's Adjust<Op> outputs (OpenCV 3.x arithmetic) for
three deltas per operation, including rounding ties, the contrast skip, the saturation round
trip at factor 1 and hue pushed past 180. Every comparison is bit for bit.
"""
import os

import cv2
import numpy as np
import pytest

from lib.dataset.distort import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    convert_scale,
    hsv_to_bgr,
    random_distort,
)

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "stage3", "distort.npz")
OPS = {"brightness": adjust_brightness, "contrast": adjust_contrast,
       "saturation": adjust_saturation, "hue": adjust_hue}


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return dict(data)


@pytest.mark.parametrize("op", sorted(OPS))
def test_ops_equal_published(golden, op):
    image = golden["image"]
    deltas = golden[op + "_deltas"]
    assert len(deltas) == 3
    for delta, expected in zip(deltas, golden[op]):
        out = OPS[op](image, delta)
        assert out.dtype == np.uint8 and out.shape == image.shape
        np.testing.assert_array_equal(out, expected, err_msg=f"{op} {delta}")


def test_golden_covers_ties_skips_and_wrap(golden):
    """The golden cases exercise what they claim, so the comparisons above can fail."""
    image = golden["image"].astype(np.int64)
    # brightness +0.5: every pixel is a tie, rounded to even (odd values go up, even stay).
    assert golden["brightness_deltas"][1] == 0.5
    np.testing.assert_array_equal(golden["brightness"][1], np.minimum(image + image % 2, 255))
    # contrast 1.0009 is skipped; saturation 1.0 still changes pixels (the HSV round trip).
    np.testing.assert_array_equal(golden["contrast"][1], golden["image"])
    assert golden["saturation_deltas"][1] == 1.0
    assert (golden["saturation"][1] != golden["image"]).any()
    # hue +18 pushes some H past 180; -13.7 pushes some below 0 (saturated at 0).
    hue = cv2.cvtColor(golden["image"], cv2.COLOR_BGR2HSV)[..., 0].astype(np.float64)
    assert (hue + golden["hue_deltas"][2] >= 180).any()
    assert (hue + golden["hue_deltas"][0] < 0).any()


def test_todays_cv2_hsv2bgr_would_not_match(golden):
    """cv2.cvtColor(HSV2BGR) of OpenCV 4.x/5.x truncates: used for the HSV ops it misses the
    published outputs on many pixels, while the OpenCV 3.x re-implementation matches."""
    image = golden["image"]
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hsv[..., 1] = convert_scale(hsv[..., 1], golden["saturation_deltas"][0], 0.0)
    expected = golden["saturation"][0]
    np.testing.assert_array_equal(hsv_to_bgr(hsv), expected)
    mismatch = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR) != expected
    assert mismatch.mean() > 0.05


def test_rounding_half_up_would_not_match(golden):
    """Round half up (instead of to even) fails the contrast 1.5 case: the ties matter."""
    image = golden["image"]
    half_up = np.clip(np.floor(image.astype(np.float32) * np.float32(1.5) + 0.5), 0, 255)
    assert (half_up.astype(np.uint8) != golden["contrast"][2]).any()


def test_hsv_to_bgr_wraps_hue_past_180():
    """H and H - 180 give the same colour (the 8-bit H * 6/180 wraps into [0, 6)), up to
    one grey level: float32 H * (6/180) - 6 is not exactly (H - 180) * (6/180)."""
    rng = np.random.default_rng(0)
    hsv = rng.integers(0, 256, size=(16, 75, 3), dtype=np.uint8)
    hsv[..., 0] = rng.integers(0, 76, size=(16, 75))
    wrapped = hsv.copy()
    wrapped[..., 0] += 180
    difference = hsv_to_bgr(wrapped).astype(np.int64) - hsv_to_bgr(hsv)
    assert np.abs(difference).max() <= 1


def test_skips_return_the_image_itself():
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert adjust_brightness(image, 0.0) is image
    assert adjust_hue(image, 0.0) is image
    assert adjust_contrast(image, 1.0 + 0.9e-3) is image
    assert adjust_contrast(image, 1.0 + 2e-3) is not image


class ScriptedRng:
    """A stand-in for numpy's Generator: fixed ``random()`` values, records ``uniform`` calls."""

    def __init__(self, randoms, uniforms):
        self.randoms, self.uniforms, self.ranges = list(randoms), list(uniforms), []

    def random(self):
        return self.randoms.pop(0)

    def uniform(self, low, high):
        self.ranges.append((low, high))
        return self.uniforms.pop(0)


@pytest.mark.parametrize("order_draw, expected_order", [
    (0.2, ["brightness", "contrast", "saturation", "hue"]),
    (0.7, ["brightness", "saturation", "hue", "contrast"]),
])
def test_random_distort_order_and_ranges(golden, order_draw, expected_order):
    ranges = {"brightness": (-32.0, 32.0), "contrast": (0.5, 1.5),
              "saturation": (0.5, 1.5), "hue": (-18.0, 18.0)}
    values = {"brightness": 11.5, "contrast": 1.3, "saturation": 0.7, "hue": 9.25}
    image = golden["image"]
    rng = ScriptedRng([order_draw, 0.1, 0.1, 0.1, 0.1], [values[op] for op in expected_order])
    out = random_distort(image, rng)
    assert rng.ranges == [ranges[op] for op in expected_order] and not rng.randoms
    expected = image
    for op in expected_order:
        expected = OPS[op](expected, np.float32(values[op]))
    np.testing.assert_array_equal(out, expected)


def test_random_distort_ops_fire_with_p_half(golden):
    """An op whose draw is >= 0.5 is skipped and draws no delta."""
    image = golden["image"]
    rng = ScriptedRng([0.2, 0.9, 0.4, 0.5, 0.6], [0.8])
    out = random_distort(image, rng)
    assert rng.ranges == [(0.5, 1.5)]  # only contrast fired
    np.testing.assert_array_equal(out, adjust_contrast(image, np.float32(0.8)))


def test_random_distort_reproducible_and_varied(golden):
    image = golden["image"]
    runs = [random_distort(image, np.random.default_rng(seed)) for seed in (1, 1, 2, 3, 4)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert len({run.tobytes() for run in runs}) == 4
