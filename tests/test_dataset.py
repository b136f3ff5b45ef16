import os

import numpy as np
import pytest

from conftest import DATA, GOLDEN_VOC
from lib.dataset.voc12_sgan import (
    VOC12ClsSalDataset,
    VOC12SalInferDataset,
    saliency_mask,
    seed_target,
)
from lib.image import feature_size
from lib.normalisation import normalise_image


@pytest.mark.parametrize("side", [65, 97])
def test_training_sample_equals_the_published_preprocessing(side):
    golden = np.load(os.path.join(DATA, f"preprocess_S{side}.npz"))
    dataset = VOC12ClsSalDataset(GOLDEN_VOC, "im_tags.pkl", new_size=side, mirror=False)
    for i, name in enumerate(golden["names"]):
        item = dataset[dataset.names.index(name)]
        assert item["name"] == name
        for key in ("image", "label", "sal", "seed", "size"):
            value = item[key].numpy()
            assert value.dtype == golden[key].dtype, key
            np.testing.assert_array_equal(value, golden[key][i], err_msg=f"{name} {key}")


def test_item_contract_on_synthetic_data(synth_voc):
    dataset = VOC12ClsSalDataset(synth_voc, "im_tags.pkl", new_size=65)
    item = dataset[0]
    h = feature_size(65)
    assert item["image"].shape == (3, 65, 65) and item["image"].dtype.is_floating_point
    assert item["label"].shape == (20,) and set(item["label"].unique().tolist()) <= {0.0, 1.0}
    assert item["sal"].shape == (h, h) and set(item["sal"].unique().tolist()) <= {0, 1}
    assert item["seed"].shape == (h, h) and item["seed"].min() >= 0 and item["seed"].max() <= 20
    tags = set((np.flatnonzero(item["label"].numpy())).tolist())
    assert set(item["seed"].unique().tolist()) - {20} <= tags


def test_max_iters_repeats_the_list(synth_voc):
    dataset = VOC12ClsSalDataset(synth_voc, "im_tags.pkl", max_iters=45, new_size=33)
    assert len(dataset.names) == 10  # the tree's 10 training images
    assert len(dataset) == 10 * 5 and dataset.samples[10:20] == dataset.names


def test_flip_mirrors_image_saliency_and_seed_together(synth_voc):
    plain = VOC12ClsSalDataset(synth_voc, "im_tags.pkl", new_size=65, mirror=False)
    mirrored = VOC12ClsSalDataset(synth_voc, "im_tags.pkl", new_size=65, mirror=True)
    flipped = [i for i in range(len(plain))
               if not np.array_equal(plain[i]["image"], mirrored[i]["image"])]
    assert 0 < len(flipped) < len(plain)  # p = 0.5
    i = flipped[0]
    a, b = plain[i], mirrored[i]
    np.testing.assert_array_equal(b["image"].numpy(), a["image"].numpy()[:, :, ::-1])
    assert np.array_equal(mirrored[i]["image"], b["image"])  # the same flip every time


def test_saliency_mask_clears_the_border_ring():
    mask = saliency_mask(np.full((65, 65), 200, np.uint8), 9, 0.06)
    assert mask.sum() == 7 * 7 and mask[0].sum() == mask[:, -1].sum() == 0


def test_seed_target_maps_classes_and_ignore():
    seed = np.array([[0, 1], [20, 21]], np.uint8).repeat(4, 0).repeat(4, 1)
    np.testing.assert_array_equal(seed_target(seed, 2), [[20, 0], [19, 20]])


def test_std_normalisation_is_rgb_over_255():
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    out = normalise_image(image, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    np.testing.assert_allclose(out[:, 0, 0], [-1, -1, 1])


def test_std_normalisation_rounds_each_step_to_float32_as_published():
    """recipe 2 step 3 with std: in place on the float32 RGB image, /255, - mean, / std, each
    step's result rounded to float32 (one float64 expression differs on most grey levels)."""
    levels = np.arange(256, dtype=np.uint8)
    image = np.stack([levels, levels[::-1], np.roll(levels, 7)], -1).reshape(16, 16, 3)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    published = image[:, :, ::-1].astype(np.float32)
    published /= 255.
    published -= mean
    published /= std
    out = normalise_image(image, mean=tuple(mean), std=tuple(std))
    np.testing.assert_array_equal(out, published.transpose(2, 0, 1))
    one_expression = ((image[:, :, ::-1] / 255.0 - mean) / std).astype(np.float32)
    assert (one_expression.transpose(2, 0, 1) != out).sum() > 100


def test_inference_sample_has_background_and_no_flip(synth_voc):
    dataset = VOC12SalInferDataset(synth_voc, "im_tags.pkl", new_size=65)
    item = dataset[0]
    assert item["bg"].dtype.is_floating_point is False and item["bg"].shape == (9, 9)
    train = VOC12ClsSalDataset(synth_voc, "im_tags.pkl", new_size=65, mirror=False)[0]
    np.testing.assert_array_equal(item["image"].numpy(), train["image"].numpy())
