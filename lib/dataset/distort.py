"""Caffe's photometric distortions of a uint8 BGR image (recipe 11.2 step 3), exactly.

The published stage 3 trains with Caffe's ``ApplyDistort`` (``im_transforms.cpp``). Channel
arithmetic is OpenCV's ``Mat::convertTo`` for 8-bit data: float32 ``x * a + b``, rounded half
to even, saturated to 0..255. BGR -> HSV is ``cv2.cvtColor``, which has not changed since; HSV
-> BGR is re-implemented here as OpenCV 2.4/3.x computed it for 8-bit images (rounding), because
today's ``cv2.cvtColor(..., COLOR_HSV2BGR)`` truncates and gives one grey level less on many
pixels.
"""
import cv2
import numpy as np

BRIGHTNESS_DELTA = 32.0         # brightness d ~ U(-32, 32)
CONTRAST_RANGE = (0.5, 1.5)     # contrast f ~ U(0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)   # saturation f ~ U(0.5, 1.5)
HUE_DELTA = 18.0                # hue d ~ U(-18, 18), in OpenCV's 0..180 hue units
OP_PROB = 0.5                   # each operation fires with this probability
CONTRAST_SKIP = 1e-3            # Caffe leaves the image alone when |f - 1| <= this

_HUE_SCALE = np.float32(6.0) / np.float32(180.0)  # OpenCV's hscale = 6.f / hrange, in float32
_INV_255 = np.float32(1.0) / np.float32(255.0)    # OpenCV's 1.f / 255.f
# OpenCV's sector_data: which of (v, v(1-s), v(1-s h), v(1-s(1-h))) is B, G and R per sector.
_SECTOR_TABLE = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]])


def convert_scale(channels, scale, shift):
    """OpenCV's 8-bit ``convertTo(dst, -1, scale, shift)``: float32 x * a + b, round half to
    even, saturate to 0..255."""
    value = channels.astype(np.float32) * np.float32(scale) + np.float32(shift)
    return np.clip(np.rint(value), 0, 255).astype(np.uint8)


def hsv_to_bgr(hsv):
    """uint8 HSV (H in 0..180, larger H wrapping round) -> uint8 BGR, as OpenCV 2.4/3.x's
    ``HSV2RGB_b`` computed it: every step in float32, channels * 255 rounded half to even."""
    hsv = np.asarray(hsv)
    h = hsv[..., 0].astype(np.float32) * _HUE_SCALE
    s = hsv[..., 1].astype(np.float32) * _INV_255
    v = hsv[..., 2].astype(np.float32) * _INV_255
    h = np.where(h >= 6, h - np.float32(6), h)  # 8-bit H * 6/180 < 12: one turn at most
    sector = np.floor(h)
    h = h - sector
    sector = sector.astype(np.intp)
    one = np.float32(1)
    table = np.stack([v, v * (one - s), v * (one - s * h), v * (one - s * (one - h))])
    picks = _SECTOR_TABLE[sector]  # (..., 3): table rows of B, G, R
    bgr = np.take_along_axis(np.moveaxis(table, 0, -1), picks, axis=-1)
    return np.clip(np.rint(bgr * np.float32(255)), 0, 255).astype(np.uint8)


def _adjust_hsv_channel(image, channel, scale, shift):
    """BGR -> HSV, ``convertTo`` on one HSV channel, HSV -> BGR (OpenCV 2.4/3.x)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hsv[..., channel] = convert_scale(hsv[..., channel], scale, shift)
    return hsv_to_bgr(hsv)


def adjust_brightness(image, delta):
    """Caffe's AdjustBrightness: every channel + ``delta`` (the image itself when delta is 0)."""
    if abs(np.float32(delta)) > 0:
        return convert_scale(image, 1.0, delta)
    return image


def adjust_contrast(image, factor):
    """Caffe's AdjustContrast: every channel * ``factor`` (skipped when |factor - 1| <= 1e-3)."""
    if abs(np.float32(factor) - np.float32(1)) > np.float32(CONTRAST_SKIP):
        return convert_scale(image, factor, 0.0)
    return image


def adjust_saturation(image, factor):
    """Caffe's AdjustSaturation: S * ``factor`` in HSV. Always converted, even for factor 1:
    the published test ``fabs(delta - 1) != 1e-3`` is always true, and the round trip
    changes pixels."""
    return _adjust_hsv_channel(image, 1, factor, 0.0)


def adjust_hue(image, delta):
    """Caffe's AdjustHue: H + ``delta`` saturated at 0..255 (so H past 180 wraps round in the
    HSV -> BGR step); the image itself when delta is 0."""
    if abs(np.float32(delta)) > 0:
        return _adjust_hsv_channel(image, 0, 1.0, delta)
    return image


def _random_op(image, rng, adjust, low, high):
    """With p = 0.5, ``adjust(image, U(low, high))`` (a float32 draw, as Caffe's)."""
    if rng.random() < OP_PROB:
        return adjust(image, np.float32(rng.uniform(low, high)))
    return image


def random_distort(image, rng):
    """Caffe's ApplyDistort with the published distort_param, drawing from the numpy
    Generator ``rng``: with p = 0.5 the order is brightness, contrast, saturation, hue, else
    brightness, saturation, hue, contrast; each operation fires with p = 0.5."""
    ops = [
        (adjust_brightness, -BRIGHTNESS_DELTA, BRIGHTNESS_DELTA),
        (adjust_contrast, *CONTRAST_RANGE),
        (adjust_saturation, *SATURATION_RANGE),
        (adjust_hue, -HUE_DELTA, HUE_DELTA),
    ]
    if rng.random() >= 0.5:
        ops = ops[:1] + ops[2:] + ops[1:2]
    for adjust, low, high in ops:
        image = _random_op(image, rng, adjust, low, high)
    return image
