"""Seeds from class maps: recipe 5 ("threshold" mode).

A seed mask holds 0 = background, 1..C = class, C + 1 = unlabeled, C the number of class maps
(VOC 20, COCO 80). The boat/train rule applies to the classes the dataset names so
(lib.dataset.description: VOC 4 and 19, COCO 9 and 7).
"""
import numpy as np

from lib.dataset.description import VOC12
from lib.image import zoom_to


def region_threshold(cam_thresh, peak):
    """``cam_thresh * max`` as the published code computed it under NumPy 1: the product of a
    Python float and a float32 scalar in float64, rounded to float32 where it meets the float32
    map. (NumPy 2 multiplies in float32, one float32 step off for thresholds such as 0.3.)"""
    return np.float32(cam_thresh * float(peak))


def seeds_from_cams(maps, tags, bg, cam_thresh=0.25, ignore_conflict=False,
                    boat_train=VOC12.boat_train_classes):
    """Paint the h x h seed mask of one image.

    maps: (C, h, w) class maps M (cam + seg, or cam); tags: classes in 1..C; bg: bool
    (h, w) background from saliency. Each tag's region is M[c-1] > cam_thresh * max(M[c-1]).
    Regions (bg is channel 0) paint in the order ``np.argsort(areas)[::-1]`` over the float64
    areas, exactly as published (larger first, so smaller regions win; equal areas in that
    call's order, not a stable sort's); then pixels of the ``boat_train`` classes that are
    also background go back to 0. With ``ignore_conflict`` a pixel takes a channel only if
    exactly one channel claims it, else it is unlabeled (C + 1).
    """
    maps = np.asarray(maps)
    unlabeled = len(maps) + 1
    claims = np.zeros((unlabeled,) + bg.shape, dtype=bool)
    claims[0] = bg
    for c in np.unique(tags):
        channel = maps[c - 1]
        claims[c] = channel > region_threshold(cam_thresh, channel.max())

    if ignore_conflict:
        single = claims.sum(axis=0) == 1
        return np.where(single, claims.argmax(axis=0), unlabeled).astype(np.uint8)

    mask = np.full(bg.shape, unlabeled, dtype=np.uint8)
    mask[bg] = 0
    areas = claims.sum(axis=(1, 2)).astype(np.float64)
    for k in np.argsort(areas)[::-1]:  # the published call: equal areas fall as they do there
        if areas[k] > 0:
            mask[claims[k]] = k
    mask[np.isin(mask, boat_train) & bg] = 0
    return mask


def seed_to_image_size(mask, size):
    """Zoom an h x w seed mask to the image's (H, W) with nearest neighbour (order 0)."""
    return zoom_to(mask, (int(size[0]), int(size[1])), order=0)
