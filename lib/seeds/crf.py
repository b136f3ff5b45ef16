"""Seeds from class maps through a dense CRF on the image: recipe 6 ("crf" mode).

Per image, the tags' maps become probabilities P_c = ReLU(M[c-1]) / max, zoomed bilinearly
(corner-aligned, as scipy.ndimage.zoom) to the image size. Two dense CRFs (pydensecrf, the
reference code's settings) sharpen [bg, P_c ...] along colour edges, with a background score
bg = (1 - max_c P_c) ** alpha for a low and a high alpha. The low alpha keeps background
strong, so its classes are confident foreground; the high alpha makes background weak, so
its background is confident background; what lies between is unlabeled (C + 1, C the
number of class maps).
"""
import numpy as np

from lib.config import ConfigError
from lib.crf import dense_crf, unary_from_probabilities
from lib.image import zoom_to


def crf_settings(cfg):
    """The keyword arguments of :func:`seeds_from_crf` from the config's ``crf_*`` keys,
    checked (ConfigError naming the key)."""
    checks = [
        ("crf_alpha_low", cfg.crf_alpha_low > 0, "must be > 0"),
        ("crf_alpha_high", cfg.crf_alpha_high >= cfg.crf_alpha_low,
         "must be >= crf_alpha_low"),
        ("crf_scale", cfg.crf_scale > 0, "must be > 0"),
        ("crf_iterations", cfg.crf_iterations >= 1, "must be >= 1"),
    ]
    for key, ok, why in checks:
        if not ok:
            raise ConfigError(f"config key '{key}' {why}, got {cfg[key]!r}")
    return {"alpha_low": cfg.crf_alpha_low, "alpha_high": cfg.crf_alpha_high,
            "scale": cfg.crf_scale, "iterations": cfg.crf_iterations}


def class_probabilities(maps, tags, size):
    """(len(tags), H, W) float32: P_c = ReLU(M[c-1]) / max (0 where the max is 0), zoomed
    bilinearly (order 1, corner-aligned) from feature size to ``size`` = (H, W)."""
    relu = np.maximum(np.asarray(maps, dtype=np.float32)[np.asarray(tags) - 1], 0)
    peak = relu.max(axis=(1, 2), keepdims=True)
    unit = np.divide(relu, peak, out=np.zeros_like(relu), where=peak > 0)
    full = zoom_to(unit.transpose(1, 2, 0), (int(size[0]), int(size[1])), order=1)
    return np.ascontiguousarray(full.transpose(2, 0, 1))


def seeds_from_crf(maps, tags, image_rgb, alpha_low=4.0, alpha_high=32.0, scale=1.0,
                   iterations=10):
    """The H x W uint8 seed of one image (0 background, 1..C class, C + 1 unlabeled).

    maps: (C, h, w) class maps M; tags: classes in 1..C; image_rgb: H x W x 3 uint8.
    Seed = the low-alpha CRF's class where it picks one, C + 1 where it picks background,
    then 0 where the high-alpha CRF picks background. When no tag's map has a positive value
    there is no class evidence to refine, and the whole seed is C + 1.
    """
    image_rgb = np.asarray(image_rgb)
    size = image_rgb.shape[:2]
    tags = np.unique(np.asarray(tags, dtype=np.int64))
    seed = np.full(size, len(maps) + 1, dtype=np.uint8)
    if tags.size == 0:
        return seed
    probs = class_probabilities(maps, tags, size)
    if not probs.any():
        return seed
    strongest = probs.max(axis=0)

    def crf_argmax(alpha):
        scores = np.concatenate([((1 - strongest) ** alpha)[None], probs])
        return dense_crf(unary_from_probabilities(scores), image_rgb, scale,
                         iterations).argmax(axis=0)

    low = crf_argmax(alpha_low)
    is_class = low > 0
    seed[is_class] = tags[low[is_class] - 1]
    seed[crf_argmax(alpha_high) == 0] = 0
    return seed
