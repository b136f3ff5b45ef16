"""A look at stage 3's seeds before training: their class mix, and two mistakes it reveals.

Stage 3 trains on seeds where C + 1 (VOC 21, COCO 81) marks the unlabeled pixels (what infer_cam
writes). The initial seeds (``ini_seed/<seed_subdir>``) mark them 0 instead, which stage 3 reads
as background: a seed folder none of whose files read holds a C + 1 is almost surely initial
seeds. Seeds in which
almost no labelled pixel is a class teach the network to call everything background, and the
loss falls close to 0 all the same. Both are said in one warning line each; the mix is logged
either way. Only a few files are read, spread over the names (the ground truth of strong names
is not a seed and is left out).
"""
import logging

import numpy as np

from lib.dataset.description import VOC12

# Seed files read: initial seeds hold unlabeled (C + 1) in none; SGAN's seeds (threshold or CRF
# mode) leave unlabeled the pixels that are neither a confident class nor confident background,
# which almost every image has, so 32 files of them cannot all lack it.
SAMPLED_FILES = 32
# Below this share of the labelled pixels (background + classes) the seeds hold almost no class.
# Objects cover about a quarter of the pixels (24% of the synthetic data's ground truth, a
# similar share on VOC); even the synthetic initial seeds, small blobs inside the objects, are 5%
# class; the broken seeds that trained to a loss of 0.002 held 135 class pixels in 40 images.
MIN_CLASS_SHARE = 0.01


def _dataset_option(description):
    """The ``--dataset_name`` option of a tools/ command for ``description`` ("" for VOC, the
    tools' default)."""
    return "" if description is VOC12 else f" --dataset_name {description.name}"


def sampled_names(names, count=SAMPLED_FILES):
    """Up to ``count`` of ``names``, evenly spread (sorted names cluster by year and source)."""
    names = sorted(names)
    picks = np.linspace(0, len(names) - 1, min(count, len(names))).round().astype(int)
    return [names[i] for i in np.unique(picks)]


def value_counts(labels, unlabeled):
    """Pixels per seed value 0..``unlabeled`` (C + 1) over the uint8 ``labels`` (values checked
    by the caller), and how many of them hold ``unlabeled``."""
    counts = np.zeros(unlabeled + 1, np.int64)
    files_with_unlabeled = 0
    for label in labels:
        found = np.bincount(label.ravel(), minlength=unlabeled + 1)
        counts += found
        files_with_unlabeled += bool(found[unlabeled])
    return counts, files_with_unlabeled


def seed_notes(dataset, count=SAMPLED_FILES):
    """[(logging level, line)]: the class mix of ``count`` seed files of ``dataset`` (a
    VOC12SegDataset) and a warning for each mistake found; [] if every name is strong."""
    names = sampled_names([n for n in dataset.names if not dataset.is_strong(n)], count)
    if not names:
        return []
    description = dataset.description
    value = description.unlabeled
    counts, with_unlabeled = value_counts(map(dataset.read_label, names), value)
    background, classes, unlabeled = counts[0], counts[1:value].sum(), counts[value]
    total = counts.sum()
    folder = dataset.label_dir
    notes = [(logging.INFO, f"seeds in {folder}: {background / total:.1%} background, "
                            f"{classes / total:.1%} classes, {unlabeled / total:.1%} unlabeled "
                            f"({value}) over the pixels of {len(names)} seed files")]
    if not with_unlabeled:
        notes.append((logging.WARNING, (
            f"warning: seed_dir {folder} looks like initial seeds (0 = background or unknown), "
            f"not SGAN's seeds ({value} = unlabeled): none of {len(names)} seed files read "
            f"holds {value}, and stage 3 reads every 0 as background")))
    labelled = background + classes
    if classes <= MIN_CLASS_SHARE * labelled:  # none labelled at all: 0 <= 0
        notes.append((logging.WARNING, (
            f"warning: seed_dir {folder}: only {classes} of {labelled} labelled pixels of "
            f"{len(names)} seed files are a class ({classes / max(labelled, 1):.2%}): the "
            f"network will learn background almost everywhere; look at them with "
            f"tools/visualize.py --dataset_root {dataset.root}{_dataset_option(description)} "
            f"--seeds {folder} --first 8 --out seeds.png")))
    return notes
