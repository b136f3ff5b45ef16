"""Saved class maps of seed inference: one compressed ``NAME.npz`` per image.

A file holds what the seeds of recipe 5 depend on, so seeds for any ``cam_thresh`` can
be made again without the network: ``maps`` (float32 K x h x w, the class maps M[c-1] of
the image's K tags, unrounded so that re-made seeds equal the inferred ones), ``tags``
(int64 K, classes 1..C), ``size`` (int64 [H, W]) and ``bg`` (bool h x w, the saliency
background). Channels of classes outside the tags never reach a seed and are not stored.
"""
import io
import os

import numpy as np

from lib.errors import UserError
from lib.dataset.description import VOC12
from lib.files import atomic_write_bytes, file_names
from lib.paths import beside

SUFFIX = ".npz"
_KEYS = ("maps", "tags", "size", "bg")


def class_maps_dir(seed_dir):
    """The folder beside a seed folder that holds its class maps: ``<seed_dir>_maps``."""
    return beside(seed_dir, "_maps")


def save_class_maps(path, maps, tags, size, bg):
    """Write the record of one image atomically; ``maps`` is the full (C, h, w) M."""
    tags = np.unique(np.asarray(tags, dtype=np.int64))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, maps=np.asarray(maps, dtype=np.float32)[tags - 1], tags=tags,
                        size=np.asarray(size, dtype=np.int64), bg=np.asarray(bg, dtype=bool))
    atomic_write_bytes(path, buffer.getvalue())


def load_class_maps(path, dataset=VOC12):
    """Read a record: {"maps" (C, h, w) float32 with zeros outside the tags, C the foreground
    classes of ``dataset``, "tags", "size", "bg"}; UserError if the file is missing or not
    such a record."""
    try:
        with np.load(path) as data:
            record = {key: data[key] for key in _KEYS}
    except Exception as exc:  # any reader failure means the file is unusable
        raise UserError(f"cannot read class maps {path}: {exc or type(exc).__name__}") from None
    tags = record["tags"]
    if record["maps"].shape != (tags.size,) + record["bg"].shape:
        raise UserError(f"{path}: maps {record['maps'].shape} do not fit {tags.size} tags and "
                        f"bg {record['bg'].shape}")
    if tags.size and tags.max() > dataset.num_fg_classes:
        raise UserError(f"{path}: tag {tags.max()} is not a class of dataset {dataset.name} "
                        f"(1..{dataset.num_fg_classes})")
    full = np.zeros((dataset.num_fg_classes,) + record["bg"].shape, dtype=np.float32)
    full[tags - 1] = record["maps"]
    record["maps"] = full
    return record


def list_class_maps(folder):
    """Sorted names of the records in ``folder`` (temporary dot-files skipped)."""
    if not os.path.isdir(folder):
        raise UserError(f"class-map folder not found: {folder} (run infer_cam with "
                        f"save_class_maps=true)")
    return file_names(folder, SUFFIX)
