"""Stage 3's look at its seeds before training (lib.dataset.seed_check): the class mix, and a
warning for initial seeds (no 21 anywhere) and for seeds with almost no class pixel."""
import logging
import os

import numpy as np
import pytest

from lib.dataset.seed_check import MIN_CLASS_SHARE, SAMPLED_FILES, sampled_names, seed_notes
from lib.dataset.tags import load_tags
from lib.dataset.voc12_seg import VOC12SegDataset
from lib.image import read_label_png, write_png
from lib.voc import IGNORE, UNLABELED

INITIAL_SEEDS = "looks like initial seeds"
FEW_CLASSES = "labelled pixels"


@pytest.fixture(scope="module")
def names(synth_voc):
    """The training images (those of the tags file, with initial seeds)."""
    return sorted(load_tags(os.path.join(synth_voc, "im_tags.pkl")))


def ground_truth(root, name):
    return read_label_png(os.path.join(root, "SegmentationClassAug", name + ".png"))


def seed_folder(path, root, names, make):
    """A seed folder of ``make(ground truth)`` for every name."""
    os.makedirs(path, exist_ok=True)
    for name in names:
        write_png(os.path.join(path, name + ".png"), make(ground_truth(root, name)))
    return str(path)


def notes_of(root, names, seed_dir, **kwargs):
    return seed_notes(VOC12SegDataset(root, names, seed_dir, resize=73, crop_size=65, **kwargs))


def warnings_of(notes):
    return [line for level, line in notes if level == logging.WARNING]


def test_initial_seeds_are_named_as_such(synth_voc, names):
    folder = os.path.join(synth_voc, "ini_seed", "base_30_bg")  # the generator's initial seeds
    notes = notes_of(synth_voc, names, folder)
    assert len(notes) == 2 and notes[0][0] == logging.INFO
    assert warnings_of(notes) == [notes[1][1]]
    assert f"seed_dir {folder} {INITIAL_SEEDS}" in notes[1][1]
    assert f"none of {len(names)} seed files read holds 21" in notes[1][1]
    assert "stage 3 reads every 0 as background" in notes[1][1]
    assert "0.0% unlabeled" in notes[0][1]


def test_sgan_like_seeds_give_their_class_mix_and_no_warning(synth_voc, names, tmp_path):
    """Seeds as infer_cam writes them: the ground truth with its borders unlabeled (21)."""
    def sgan_like(gt):
        return np.where(gt == IGNORE, UNLABELED, gt).astype(np.uint8)

    folder = seed_folder(tmp_path / "sgan", synth_voc, names, sgan_like)
    notes = notes_of(synth_voc, names, folder)
    labels = np.concatenate([sgan_like(ground_truth(synth_voc, n)).ravel() for n in names])
    shares = [np.mean(labels == 0), np.mean((labels > 0) & (labels < UNLABELED)),
              np.mean(labels == UNLABELED)]
    assert notes == [(logging.INFO, (
        f"seeds in {folder}: {shares[0]:.1%} background, {shares[1]:.1%} classes, "
        f"{shares[2]:.1%} unlabeled (21) over the pixels of {len(names)} seed files"))]
    assert min(shares) > 0.01


def test_seeds_with_almost_no_class_are_warned_of(synth_voc, names, tmp_path):
    """Everything background but a one-pixel class and an unlabeled border per image."""
    def background(gt):
        seed = np.zeros(gt.shape, np.uint8)
        seed[0] = UNLABELED
        seed[-1, -1] = 5
        return seed

    folder = seed_folder(tmp_path / "empty", synth_voc, names, background)
    notes = notes_of(synth_voc, names, folder)
    [warning] = warnings_of(notes)
    labelled = sum(ground_truth(synth_voc, n)[1:].size for n in names)
    assert folder in warning and f"only {len(names)} of {labelled} labelled pixels" in warning
    assert INITIAL_SEEDS not in warning
    assert len(names) / labelled < MIN_CLASS_SHARE


def test_seeds_with_no_labelled_pixel_at_all_are_warned_of(synth_voc, names, tmp_path):
    folder = seed_folder(tmp_path / "unlabeled", synth_voc, names,
                         lambda gt: np.full(gt.shape, UNLABELED, np.uint8))
    [warning] = warnings_of(notes_of(synth_voc, names, folder))
    assert folder in warning and "only 0 of 0 labelled pixels" in warning


def test_only_seed_files_are_read_a_few_spread_over_the_names(synth_voc, names, tmp_path):
    many = [f"{i:05d}" for i in range(1000)]
    picked = sampled_names(many)
    assert len(picked) == SAMPLED_FILES and picked[0] == many[0] and picked[-1] == many[-1]
    assert sampled_names(many[:5]) == many[:5]
    # strong names train on their ground truth: their seeds are neither read nor needed
    folder = seed_folder(tmp_path / "partial", synth_voc, names[:3], lambda gt: gt * 0)
    notes = notes_of(synth_voc, names, folder, strong_names=names[3:])
    assert "over the pixels of 3 seed files" in notes[0][1] and INITIAL_SEEDS in notes[1][1]
    assert notes_of(synth_voc, names, folder, strong_names=names) == []
