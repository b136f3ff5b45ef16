"""Per-image inference of stage 3: the published ``test_ms.py --smooth --multi_scale``
(recipe 11.5).

The image (RGB uint8, H x W) is zoomed to S x S for each test scale, normalised as the
backbone's weights expect (``normalisation`` = (mean, std): the published test mean for
vgg16, ImageNet's mean and std for resnet101; lib.normalisation), fed to the network, and
the C + 1 logit maps (VOC 21) are zoomed back to H x W and summed; softmax, a floor of 1e-5,
then the full-size dense CRF on the RGB image (or not), and the argmax. Zooms are scipy.ndimage.zoom
order 1 in float32, as published, including its constant-mode edge: where the last output
coordinate lands past the last input by rounding, that row or column is 0 (before the mean).

``exact=False`` does the zooms with torch on the network's device instead (bilinear,
align_corners=True, float32, the same edge zeros): the labels agree with the exact path on
at least 99.9% of pixels (recipe 11.5 allows that; all of them on the test images) and is
several times faster, even on the CPU. That path also takes several images at once
(:func:`batch_scores`): one forward per scale for them all, so a GPU runs full batches.
"""

import numpy as np
import torch
import torch.nn.functional as F

from lib.crf import PROBABILITY_FLOOR, dense_crf, unary_from_probabilities
from lib.image import scipy_zoom_to
from lib.normalisation import PUBLISHED_TEST_INPUT, normalise_test_batch, normalise_test_input

TEST_SCALES = (288, 385, 481)  # int(0.75 * 385), 385, int(1.25 * 385)
CRF_SCALE, CRF_ITERATIONS = 1.0, 10  # the full-size test CRF
TAG_BONUS = 1.0  # restrict_to_tags: added to background and the image's tags before the argmax


def network_input(image_rgb, side, normalisation=PUBLISHED_TEST_INPUT):
    """float32 3 x side x side network input: the float32 image zoomed to side x side (order 1,
    aspect ignored), then, with ``normalisation`` = (mean, std), RGB -> BGR minus the mean
    (std None, the published test) or RGB / 255, minus the mean, / std (in float32); CHW."""
    zoomed = scipy_zoom_to(image_rgb.astype(np.float32), (side, side), order=1)
    return normalise_test_input(zoomed, normalisation)


def multi_scale_scores(forward, image_rgb, scales=TEST_SCALES, device="cpu", exact=True,
                       normalisation=PUBLISHED_TEST_INPUT):
    """float32 C + 1 x H x W: the sum over ``scales`` of the logits zoomed back to the image
    size.

    ``forward`` maps a float32 1 x 3 x S x S tensor on ``device`` to 1 x C + 1 x s x s logits
    (the network in eval mode), its input normalised by ``normalisation`` (see
    :func:`network_input`). ``exact`` zooms with scipy as published; otherwise with torch
    on ``device`` (see the module docstring).
    """
    with torch.no_grad():
        if exact:
            return _exact_scores(forward, image_rgb, scales, device, normalisation)
        return _device_scores(forward, image_rgb, scales, device, normalisation)


def _exact_scores(forward, image_rgb, scales, device, normalisation):
    """:func:`multi_scale_scores` with scipy's zooms, summed in float32 in the scales' order."""
    height, width = image_rgb.shape[:2]
    total = 0
    for side in scales:
        batch = torch.from_numpy(network_input(image_rgb, side, normalisation))[None].to(device)
        logits = forward(batch)[0].float().cpu().numpy().transpose(1, 2, 0)  # s x s x (C + 1)
        total = total + scipy_zoom_to(logits, (height, width), order=1)
    return np.ascontiguousarray(total.transpose(2, 0, 1))


def _device_scores(forward, image_rgb, scales, device, normalisation):
    """:func:`multi_scale_scores` with torch's bilinear zooms on ``device``."""
    return batch_scores(forward, [image_rgb], scales, device, normalisation)[0]


def batch_scores(forward, images_rgb, scales=TEST_SCALES, device="cpu",
                 normalisation=PUBLISHED_TEST_INPUT):
    """:func:`multi_scale_scores` (``exact=False``) of each image of ``images_rgb`` (RGB uint8,
    of any sizes), with one ``forward`` per scale for them all: each image is zoomed to S x S
    on ``device``, the zooms are stacked into one N x 3 x S x S batch, and each image's logits
    are zoomed back to its own size. Every image's arithmetic is that of a batch of one."""
    images = [torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None]
              .float() for image in images_rgb]  # 1 x 3 x H x W, RGB
    totals = [0] * len(images)
    for side in scales:
        zoomed = torch.cat([zoom_on_device(image, (side, side)) for image in images])
        logits = forward(normalise_test_batch(zoomed, normalisation)).float()
        for k, (image, image_logits) in enumerate(zip(images, logits.split(1))):
            totals[k] = totals[k] + zoom_on_device(image_logits, image.shape[-2:])
    return [total[0].cpu().numpy() for total in totals]


def zoom_on_device(maps, out_hw):
    """scipy.ndimage.zoom order 1 of N x C x h x w ``maps`` to ``out_hw`` in torch: bilinear
    with corner alignment, and scipy's zeros at a last row or column that rounds past the edge."""
    out = F.interpolate(maps, size=tuple(out_hw), mode="bilinear", align_corners=True)
    if _last_past_edge(maps.shape[-2], out_hw[0]):
        out[..., -1, :] = 0
    if _last_past_edge(maps.shape[-1], out_hw[1]):
        out[..., :, -1] = 0
    return out


def _last_past_edge(n_in, n_out):
    """Whether scipy's last output coordinate (n_out - 1) * ((n_in - 1) / (n_out - 1)), in
    float64, lands past n_in - 1, which its constant mode fills with 0."""
    return n_out > 1 and (n_out - 1) * ((n_in - 1) / (n_out - 1)) > n_in - 1


def probabilities(scores):
    """float32 softmax of C + 1 x H x W scores over the classes, values below 1e-5 raised to
    1e-5 (not renormalised), as published. Computed in the published H x W x C + 1 layout: NumPy
    sums a contiguous last axis pairwise, so the other layout differs in the last bit."""
    scores = np.ascontiguousarray(scores.transpose(1, 2, 0))
    exp = np.exp(scores - scores.max(axis=2, keepdims=True))
    probs = exp / exp.sum(axis=2, keepdims=True)
    probs[probs < PROBABILITY_FLOOR] = PROBABILITY_FLOOR
    return np.ascontiguousarray(probs.transpose(2, 0, 1))


def labels_from_probabilities(probs, image_rgb, crf=True, tags=None):
    """uint8 H x W labels 0..C from C + 1 x H x W probabilities: the argmax of the full-size
    dense CRF's marginals on the RGB image (``crf``) or of ``probs``; with ``tags`` (classes
    1..C, restrict_to_tags) background and those classes get 1 more before the argmax."""
    if crf:
        scores = dense_crf(unary_from_probabilities(probs), image_rgb,
                           scale=CRF_SCALE, iterations=CRF_ITERATIONS)
    else:
        scores = probs.copy() if tags is not None else probs
    if tags is not None:
        tags = np.unique(np.asarray(tags, dtype=np.int64))
        last = len(probs) - 1
        if tags.size and (tags.min() < 1 or tags.max() > last):
            raise ValueError(f"tags must be classes 1..{last}, got {tags.tolist()}")
        scores[np.concatenate([[0], tags])] += TAG_BONUS
    return scores.argmax(axis=0).astype(np.uint8)


def predict_labels(forward, image_rgb, scales=TEST_SCALES, device="cpu", exact=True,
                   crf=True, tags=None, normalisation=PUBLISHED_TEST_INPUT):
    """uint8 H x W labels of one RGB image: recipe 11.5 steps 1-3."""
    probs = probabilities(multi_scale_scores(forward, image_rgb, scales, device, exact,
                                             normalisation))
    return labels_from_probabilities(probs, image_rgb, crf=crf, tags=tags)
