"""Seeds from class maps: SPEC section 5 ("threshold" mode).

A seed mask holds 0 = background, 1..20 = class, 21 = unlabeled.
"""
import numpy as np

from lib.image import zoom_to
from lib.voc import UNLABELED

BOAT, TRAIN = 4, 19


def region_threshold(cam_thresh, peak):
    """``cam_thresh * max`` as the published code computed it under NumPy 1: the product of a
    Python float and a float32 scalar in float64, rounded to float32 where it meets the float32
    map. (NumPy 2 multiplies in float32, one float32 step off for thresholds such as 0.3.)"""
    return np.float32(cam_thresh * float(peak))


def seeds_from_cams(maps, tags, bg, cam_thresh=0.25, ignore_conflict=False):
    """Paint the h x h seed mask of one image.

    maps: (20, h, w) class maps M (cam + seg, or cam); tags: classes in 1..20; bg: bool
    (h, w) background from saliency. Each tag's region is M[c-1] > cam_thresh * max(M[c-1]).
    Regions (bg is channel 0) paint in the order ``np.argsort(areas)[::-1]`` over the float64
    areas, exactly as published (larger first, so smaller regions win; equal areas in that
    call's order, not a stable sort's); then boat/train pixels that are also background go
    back to 0. With ``ignore_conflict`` a pixel takes a channel only if exactly one channel
    claims it, else it is unlabeled.
    """
    maps = np.asarray(maps)
    claims = np.zeros((UNLABELED,) + bg.shape, dtype=bool)
    claims[0] = bg
    for c in np.unique(tags):
        channel = maps[c - 1]
        claims[c] = channel > region_threshold(cam_thresh, channel.max())

    if ignore_conflict:
        single = claims.sum(axis=0) == 1
        return np.where(single, claims.argmax(axis=0), UNLABELED).astype(np.uint8)

    mask = np.full(bg.shape, UNLABELED, dtype=np.uint8)
    mask[bg] = 0
    areas = claims.sum(axis=(1, 2)).astype(np.float64)
    for k in np.argsort(areas)[::-1]:  # the published call: equal areas fall as they do there
        if areas[k] > 0:
            mask[claims[k]] = k
    mask[np.isin(mask, (BOAT, TRAIN)) & bg] = 0
    return mask


def seed_to_image_size(mask, size):
    """Zoom an h x w seed mask to the image's (H, W) with nearest neighbour (order 0)."""
    return zoom_to(mask, (int(size[0]), int(size[1])), order=0)
