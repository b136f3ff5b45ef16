"""Tests of the visualisation helpers and the overview diagram script."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lib.pictures.panels import Panel, colorize_labels, heatmap, overlay, save_seed_grid
from lib.voc import VOC_CLASSES, VOC_PALETTE

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_palette_matches_the_voc_colour_map():
    assert VOC_PALETTE.shape == (256, 3) and VOC_PALETTE.dtype == np.uint8
    assert VOC_PALETTE[0].tolist() == [0, 0, 0]
    assert VOC_PALETTE[1].tolist() == [128, 0, 0]
    assert VOC_PALETTE[2].tolist() == [0, 128, 0]
    assert VOC_PALETTE[15].tolist() == [192, 128, 128]
    assert VOC_PALETTE[20].tolist() == [0, 64, 128]
    assert VOC_PALETTE[21].tolist() == [128, 64, 128]
    assert VOC_PALETTE[255].tolist() == [224, 224, 192]
    assert len({tuple(c) for c in VOC_PALETTE.tolist()}) == 256


def test_colorize_labels_maps_values_and_shows_unlabeled_apart():
    mask = np.array([[0, 1, 15], [21, 255, 20]], dtype=np.uint8)
    rgb = colorize_labels(mask)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0].tolist() == [[0, 0, 0], [128, 0, 0], [192, 128, 128]]
    assert rgb[1].tolist() == [[255, 255, 255], [224, 224, 192], [0, 64, 128]]
    assert colorize_labels(mask, unlabeled_color=(10, 20, 30))[1, 0].tolist() == [10, 20, 30]
    assert colorize_labels(mask, unlabeled_color=None)[1, 0].tolist() == [128, 64, 128]


def test_colorize_labels_rejects_non_label_input():
    with pytest.raises(TypeError):
        colorize_labels(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError):
        colorize_labels(np.array([[0, 256]]))


def test_overlay_blends_classes_and_leaves_unlabeled_and_ignore_untouched():
    image = np.full((2, 2, 3), 200, dtype=np.uint8)
    mask = np.array([[0, 1], [21, 255]])
    out = overlay(image, mask, alpha=0.5)
    assert out[0, 0].tolist() == [100, 100, 100]  # background: blended with black
    assert out[0, 1].tolist() == [164, 100, 100]  # aeroplane (128, 0, 0)
    assert out[1, 0].tolist() == [200, 200, 200]
    assert out[1, 1].tolist() == [200, 200, 200]


def test_heatmap_spans_the_colour_map_and_blends_at_image_size():
    cam = np.array([[0.0, 1.0], [2.0, 4.0]])
    colours = heatmap(cam)
    assert colours.shape == (2, 2, 3) and colours.dtype == np.uint8
    assert colours[0, 0, 2] > 100 and colours[0, 0, 0] == 0  # minimum is blue
    assert colours[1, 1, 0] > 100 and colours[1, 1, 2] == 0  # maximum is red
    assert heatmap(np.ones((3, 3))).tolist() == heatmap(np.zeros((3, 3))).tolist()
    image = np.zeros((8, 6, 3), dtype=np.uint8)
    blended = heatmap(cam, image, alpha=0.5)
    assert blended.shape == (8, 6, 3)
    assert blended.max() <= 128


def test_panel_rejects_unknown_kinds():
    with pytest.raises(ValueError):
        Panel("mask", np.zeros((2, 2)))


def test_save_seed_grid_writes_png_with_legend_of_present_classes(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    seed = np.full((40, 60), 21, dtype=np.uint8)
    seed[:20, :30] = 0
    seed[20:, 30:] = 15
    truth = np.zeros((40, 60), dtype=np.uint8)
    truth[5:15, 5:15] = 1
    truth[15, :] = 255
    rows = [[Panel("rgb", image), Panel("gray", rng.random((40, 60))), Panel("labels", seed)],
            [Panel("rgb", image), Panel("gray", np.zeros((40, 60), np.uint8)),
             Panel("labels", truth)]]
    path = tmp_path / "grid" / "seeds.png"

    legend = save_seed_grid(rows, path, column_titles=["image", "saliency", "labels"],
                            panel_inches=2.0, dpi=50)

    assert [value for value, _ in legend] == [0, 1, 15, 21, 255]
    assert [name for _, name in legend] == ["background", "aeroplane", "person", "unlabeled",
                                            "ignore"]
    assert sorted(os.listdir(path.parent)) == ["seeds.png"]  # no temporary file left behind
    picture = cv2.imread(str(path))
    assert picture is not None
    assert picture.shape[1] == 3 * 2.0 * 50  # width: columns x panel size
    assert picture.shape[0] > 2 * 2.0 * 50  # height: rows plus titles and legend
    legend_strip = picture[-19:].reshape(-1, 3)  # below the panels: 0.38 in at 50 dpi
    for value in (1, 15, 255):  # legend patches in the classes' colours (BGR on disk)
        assert (legend_strip == VOC_PALETTE[value][::-1]).all(axis=1).any()


def test_save_seed_grid_without_label_panels_has_no_legend(tmp_path):
    rows = [[Panel("gray", np.linspace(0, 1, 16).reshape(4, 4))]]
    assert save_seed_grid(rows, tmp_path / "g.png") == []
    assert cv2.imread(str(tmp_path / "g.png")) is not None


def test_class_names_cover_background_and_twenty_classes():
    assert len(VOC_CLASSES) == 21
    assert VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person"


def test_draw_overview_writes_a_wide_png(tmp_path):
    out = tmp_path / "overview.png"
    subprocess.run([sys.executable, "tools/draw_overview.py", "--out", str(out)], cwd=REPO_ROOT,
                   check=True, capture_output=True, timeout=120)
    picture = cv2.imread(str(out))
    assert picture is not None
    height, width = picture.shape[:2]
    assert 1400 <= width <= 1800 and height < width
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 20  # coloured boxes, not blank
