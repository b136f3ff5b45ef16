"""Stage 3 inference per image (recipe 11.5) against the published test_ms.py's outputs
(tests/data/stage3/test_ms.npz: a stub network returning fixed logits per scale)."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import DATA
from lib.image import read_image, read_label_png, scipy_zoom_to, write_palette_png
from lib.normalisation import PUBLISHED_TEST_INPUT, TEST_MEAN_BGR
from lib.stage3.predict import (
    TEST_SCALES,
    batch_scores,
    labels_from_probabilities,
    multi_scale_scores,
    network_input,
    predict_labels,
    probabilities,
    zoom_on_device,
)
from lib.voc import NUM_CLASSES, VOC_PALETTE

GOLDEN = np.load(os.path.join(DATA, "stage3", "test_ms.npz"))
NAMES = [str(name) for name in GOLDEN["names"]]
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # (mean, std) of the resnet101 input
MIN_AGREEMENT = 0.999  # recipe 11.5: a faster implementation agrees on at least 99.9% of pixels
# (size, seed): each size puts a zero edge row or column into some zoom (scipy's constant mode)
SYNTHETIC = (((59, 97), 1), ((80, 125), 2), ((126, 50), 3), ((33, 129), 4))


def golden_image(name):
    return read_image(os.path.join(DATA, "golden_voc", "JPEGImages", name + ".jpg"))[:, :, ::-1]


def golden_forward(name, seen=None):
    """The published test's stub network: fixed logits per input size; records its inputs."""
    def forward(batch):
        assert batch.dtype == torch.float32 and batch.shape[:2] == (1, 3)
        if seen is not None:
            seen[batch.shape[-1]] = batch[0].numpy().copy()
        logits = GOLDEN[f"logits_{name}_{batch.shape[-1]}"].astype(np.float32)
        return torch.from_numpy(logits)[None]
    return forward


def pooling_forward(seed):
    """A stand-in network whose logits depend on its input: 8 x 8 average pooling (ceil, so
    s = ceil(S / 8)), a fixed random 1 x 1 convolution, plus a fixed smooth field per size."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(NUM_CLASSES, 3, 1, 1, generator=generator) * 0.05
    coarse = torch.randn(1, NUM_CLASSES, 4, 4, generator=generator) * 3

    def forward(batch):
        pooled = F.avg_pool2d(batch, 8, ceil_mode=True)
        field = F.interpolate(coarse, size=pooled.shape[-2:], mode="bilinear", align_corners=True)
        return F.conv2d(pooled, weight) + field
    return forward


def synthetic_image(size, seed):
    """Smooth colour blobs with noise: edges for the CRF, uint8 RGB."""
    rng = np.random.default_rng(seed)
    blobs = scipy_zoom_to(rng.uniform(0, 255, (4, 4, 3)).astype(np.float32), size, order=1)
    return np.clip(blobs + rng.normal(0, 12, blobs.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", NAMES)
def test_network_input_matches_golden(name):
    image = golden_image(name)
    seen = {}
    multi_scale_scores(golden_forward(name, seen), image)
    assert sorted(seen) == list(TEST_SCALES) == GOLDEN["scales"].tolist()
    for row, side in enumerate(TEST_SCALES):
        net_input = network_input(image, side)
        assert net_input.dtype == np.float32 and net_input.shape == (3, side, side)
        np.testing.assert_array_equal(seen[side], net_input)  # what the network is fed
        # Sums of ~1e5 float32 values in float64: only the summation order may differ, so a
        # relative 1e-12 (~1e-6 absolute, below any one float32 step of a pixel) is exact enough.
        np.testing.assert_allclose(net_input.sum(axis=(1, 2), dtype=np.float64),
                                   GOLDEN[f"input_sum_{name}"][row], rtol=1e-12)
    subsampled = network_input(image, 288)[:, ::4, ::4]
    np.testing.assert_array_equal(subsampled, GOLDEN[f"input288_{name}"])


def test_network_input_keeps_scipy_edge_zero():
    """99 -> 288 columns: scipy's last coordinate rounds past the edge and reads 0; the golden
    sums above include that column, so the published code had it too."""
    last_column = network_input(golden_image("2099_000003"), 288)[:, :, -1]
    np.testing.assert_array_equal(last_column, -np.asarray(TEST_MEAN_BGR, np.float32)[:, None]
                                  * np.ones((1, 288), np.float32))


@pytest.mark.parametrize("name", NAMES)
def test_labels_match_golden_exactly(name):
    image = golden_image(name)
    probs = probabilities(multi_scale_scores(golden_forward(name), image))
    assert probs.shape == (NUM_CLASSES,) + image.shape[:2] and probs.dtype == np.float32
    for crf in (False, True):
        labels = labels_from_probabilities(probs, image, crf=crf)
        assert labels.dtype == np.uint8
        np.testing.assert_array_equal(labels, GOLDEN[f"labels_{'crf' if crf else 'nocrf'}_{name}"])


def test_crf_is_fed_rgb():
    """The golden labels tell RGB from BGR: the CRF fed BGR gives other labels."""
    name = NAMES[0]
    image = golden_image(name)
    probs = probabilities(multi_scale_scores(golden_forward(name), image))
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    assert (labels_from_probabilities(probs, bgr) != GOLDEN[f"labels_crf_{name}"]).sum() > 0


def test_probabilities_floor_without_renormalisation():
    scores = np.zeros((NUM_CLASSES, 2, 3), np.float32)
    scores[5] = 40.0  # every other class has probability e^-40 < 1e-5
    probs = probabilities(scores)
    np.testing.assert_array_equal(probs[np.arange(NUM_CLASSES) != 5], np.float32(1e-5))
    np.testing.assert_array_equal(probs[5], np.float32(1.0))
    assert probs.sum(axis=0).min() > 1.0001  # the floor is not renormalised away


def test_restrict_to_tags():
    rng = np.random.default_rng(0)
    probs = probabilities(rng.normal(0, 3, (NUM_CLASSES, 40, 50)).astype(np.float32))
    kept = [0, 4, 17]
    labels = labels_from_probabilities(probs, None, crf=False, tags=[17, 4])
    np.testing.assert_array_equal(labels, np.asarray(kept)[probs[kept].argmax(axis=0)])
    assert set(np.unique(labels_from_probabilities(probs, None, crf=False))) - set(kept)
    image = golden_image(NAMES[1])
    probs = probabilities(multi_scale_scores(golden_forward(NAMES[1]), image))
    tags = [9]
    with_crf = labels_from_probabilities(probs, image, tags=tags)
    assert set(np.unique(with_crf)) <= {0, 9}
    assert set(np.unique(GOLDEN[f"labels_crf_{NAMES[1]}"])) - {0, 9}
    with pytest.raises(ValueError, match="1..20"):
        labels_from_probabilities(probs, image, crf=False, tags=[0, 21])


@pytest.mark.parametrize("maps_hw,out_hw", [((37, 49), (58, 74)), ((61, 61), (59, 80)),
                                            ((99, 97), (288, 288)), ((125, 126), (481, 481)),
                                            ((1, 5), (3, 7))])
def test_device_zoom_follows_scipy(maps_hw, out_hw):
    """Bilinear with corner alignment is scipy's order 1, edge zeros included (the middle
    three cases have them). torch places samples in float32: coordinates off by ~1e-5 px, on
    slopes up to 510 per px here, move values by < 0.01; a misalignment would move them by tens."""
    maps = np.random.default_rng(1).uniform(-255, 255, (3,) + maps_hw).astype(np.float32)
    expected = scipy_zoom_to(maps.transpose(1, 2, 0), out_hw, order=1).transpose(2, 0, 1)
    actual = zoom_on_device(torch.from_numpy(maps)[None], out_hw)[0].numpy()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=0.01)


def agreement(forward, image, normalisation=PUBLISHED_TEST_INPUT):
    """Fraction of pixels where the device path's labels equal the exact path's, without and
    with the CRF."""
    scores = {exact: multi_scale_scores(forward, image, exact=exact, normalisation=normalisation)
              for exact in (True, False)}
    np.testing.assert_allclose(scores[False], scores[True], rtol=0, atol=1e-3)
    probs = {exact: probabilities(s) for exact, s in scores.items()}
    return [np.mean(labels_from_probabilities(probs[True], image, crf=crf)
                    == labels_from_probabilities(probs[False], image, crf=crf))
            for crf in (False, True)]


@pytest.mark.parametrize("name", NAMES)
def test_device_path_agrees_on_golden(name):
    image = golden_image(name)
    assert min(agreement(golden_forward(name), image)) >= MIN_AGREEMENT
    fast = predict_labels(golden_forward(name), image, exact=False, crf=False)
    assert np.mean(fast == GOLDEN[f"labels_nocrf_{name}"]) >= MIN_AGREEMENT


@pytest.mark.parametrize("size,seed", SYNTHETIC)
def test_device_path_agrees_on_synthetic(size, seed):
    assert min(agreement(pooling_forward(seed), synthetic_image(size, seed))) >= MIN_AGREEMENT


@pytest.mark.parametrize("normalisation", [PUBLISHED_TEST_INPUT, IMAGENET])
def test_a_batch_of_images_of_any_sizes_scores_as_one_at_a_time(normalisation):
    """One forward per scale for the whole batch (each image zoomed to S x S, stacked), and
    each image's scores exactly those of the device path alone (the stand-in network runs
    each image of its batch alone, so only the batching itself is compared)."""
    images = [synthetic_image(size, seed) for size, seed in SYNTHETIC]
    alone = pooling_forward(7)
    shapes = []

    def forward(batch):
        shapes.append(tuple(batch.shape))
        return torch.cat([alone(image[None]) for image in batch])

    scores = batch_scores(forward, images, TEST_SCALES, normalisation=normalisation)
    assert shapes == [(len(images), 3, side, side) for side in TEST_SCALES]
    for image, got in zip(images, scores):
        assert got.shape == (NUM_CLASSES,) + image.shape[:2]
        np.testing.assert_array_equal(got, multi_scale_scores(
            alone, image, exact=False, normalisation=normalisation))


def test_imagenet_normalised_input_is_rgb_over_255_minus_mean_over_std():
    """resnet101's test input (recipe 11.6): the zoomed RGB image / 255, minus mean, / std."""
    image = synthetic_image((59, 97), 5)
    zoomed = scipy_zoom_to(image.astype(np.float32), (65, 65), order=1)
    mean, std = (np.asarray(v, np.float32) for v in IMAGENET)
    expected = ((zoomed / np.float32(255) - mean) / std).transpose(2, 0, 1)
    np.testing.assert_array_equal(network_input(image, 65, IMAGENET), expected)
    seen = {}
    multi_scale_scores(lambda batch: seen.setdefault(batch.shape[-1], batch)[:, :1].repeat(
        1, NUM_CLASSES, 1, 1), image, (65,), exact=False, normalisation=IMAGENET)
    np.testing.assert_allclose(seen[65][0].numpy(), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("size,seed", SYNTHETIC[:2])
def test_device_path_agrees_with_imagenet_normalisation(size, seed):
    assert min(agreement(pooling_forward(seed), synthetic_image(size, seed), IMAGENET)) \
        >= MIN_AGREEMENT


def test_palette_png_round_trip(tmp_path):
    from PIL import Image

    labels = np.arange(21, dtype=np.uint8).repeat(3)[None].repeat(5, axis=0)
    path = tmp_path / "out" / "name.png"
    write_palette_png(str(path), labels)
    np.testing.assert_array_equal(read_label_png(str(path)), labels)
    with Image.open(path) as image:
        assert image.mode == "P"
        palette = np.asarray(image.getpalette(), np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(palette[:21], VOC_PALETTE[:21])
    assert os.listdir(path.parent) == ["name.png"]  # the temporary file was renamed away
    with pytest.raises(ValueError, match="uint8"):
        write_palette_png(str(path), labels.astype(np.int64))
