"""Hand-off of seeds to a DSRG-style segmentation stage: an id list and SEC/DSRG cues.

The id list has one line per image, ``IMAGE SEEDDIR/NAME.png``, paths relative to the root the
segmentation stage reads from; IMAGE is where the dataset keeps the image (VOC
``JPEGImages/NAME.jpg``, COCO ``train2014/NAME.jpg``: lib.dataset.description). The cue pickle
is the localization-cue file of SEC and DSRG: ``NAME_cues`` -> int64 (3, K) array of (class,
row, col) on a 41 x 41 grid (the seed zoomed with nearest neighbour; class 0 background,
1..C; unlabeled pixels are left out), and ``NAME_labels`` -> the image's classes with
background 0 first. It is written
with pickle protocol 2 and plain NumPy arrays, as the published file.
"""
import io
import os
import pickle

import numpy as np

from lib.dataset.description import VOC12
from lib.dataset.tags import load_tags
from lib.errors import UserError
from lib.files import PNG, atomic_write_bytes, file_names
from lib.image import read_label_png, zoom_to

CUE_SIZE = 41
PICKLE_PROTOCOL = 2


def seed_names(seed_dir):
    """Sorted names of the seed PNGs in ``seed_dir`` (temporary dot-files skipped)."""
    return file_names(seed_dir, PNG, what="seed")


def id_list_lines(names, seed_prefix, dataset=VOC12):
    """``IMAGE seed_prefix/NAME.png`` for each name, IMAGE the image's path in ``dataset``
    relative to its root (``JPEGImages/NAME.jpg`` for VOC); the prefix as given."""
    seed_prefix = seed_prefix.rstrip("/")
    return [f"{dataset.image_relative_path(name)} {seed_prefix}/{name}.png" for name in names]


def write_id_list(path, names, seed_prefix, dataset=VOC12):
    text = "\n".join(id_list_lines(names, seed_prefix, dataset)) + "\n"
    atomic_write_bytes(path, text.encode())


def seed_to_cues(seed, size=CUE_SIZE, dataset=VOC12):
    """int64 (3, K) cues (class, row, col) of a seed zoomed to size x size (order 0), sorted
    by class then position; values above C (unlabeled, ignore) give no cue."""
    small = zoom_to(np.asarray(seed, dtype=np.uint8), (size, size), order=0)
    rows, cols = np.nonzero(small <= dataset.num_fg_classes)
    classes = small[rows, cols].astype(np.int64)
    order = np.argsort(classes, kind="stable")
    return np.stack([classes[order], rows[order], cols[order]]).astype(np.int64)


def cues_to_seed(cues, size=CUE_SIZE, dataset=VOC12):
    """The size x size uint8 seed of a cue array: its classes, C + 1 (unlabeled) elsewhere."""
    seed = np.full((size, size), dataset.unlabeled, dtype=np.uint8)
    classes, rows, cols = np.asarray(cues)
    seed[rows, cols] = classes
    return seed


def cue_labels(tags):
    """int64 class indices of an image with background: [0, tags ...] (sorted)."""
    return np.concatenate([[0], np.unique(np.asarray(tags, dtype=np.int64))]).astype(np.int64)


def _short(names):
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def build_cues(names, seed_dir, tags, size=CUE_SIZE, dataset=VOC12):
    """The cue dict of the named seeds; ``tags`` maps name -> classes 1..C."""
    missing = [n for n in names if n not in tags]
    if missing:
        raise UserError(f"{len(missing)} seeds have no tags: {_short(missing)}")
    cues = {}
    for name in names:
        cues[f"{name}_cues"] = seed_to_cues(read_label_png(os.path.join(seed_dir, name + PNG)),
                                            size, dataset)
        cues[f"{name}_labels"] = cue_labels(tags[name])
    return cues


def write_cues(path, cues):
    buffer = io.BytesIO()
    pickle.dump(cues, buffer, protocol=PICKLE_PROTOCOL)
    atomic_write_bytes(path, buffer.getvalue())


def export_seeds(seed_dir, list_path, seed_prefix=None, names=None, cues_path=None,
                 tags_path=None, cue_size=None, dataset=VOC12):
    """Write the id list of ``names`` (default: every seed PNG in ``seed_dir``) with seeds
    under ``seed_prefix`` (default ``seed_dir`` as given) and, with ``cues_path``, the cue
    pickle (tags from ``tags_path``), for the images and classes of ``dataset``. Returns the
    exported names."""
    if cues_path and not tags_path:
        raise UserError("the cue pickle needs the image-level tags file")
    cue_size = CUE_SIZE if cue_size is None else cue_size
    if cue_size < 1:
        raise UserError(f"the cue grid side must be >= 1, got {cue_size}")
    available = seed_names(seed_dir)
    names = available if names is None else list(dict.fromkeys(names))
    if not names:
        raise UserError(f"no seeds to export: no *.png in {seed_dir}")
    missing = sorted(set(names) - set(available))
    if missing:
        raise UserError(f"{len(missing)} listed images have no seeds in {seed_dir}: "
                        f"{_short(missing)}")
    write_id_list(list_path, names, seed_prefix or seed_dir, dataset)
    if cues_path:
        try:
            tags = load_tags(tags_path, dataset)
        except (ValueError, pickle.UnpicklingError) as exc:
            raise UserError(f"cannot read tags {tags_path}: {exc}") from None
        write_cues(cues_path, build_cues(names, seed_dir, tags, cue_size, dataset))
    return names
