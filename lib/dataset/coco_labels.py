"""COCO 2014's label PNGs, image lists and tags files from its instances files (recipe 14.1).

For each split (train2014, val2014):
- ``SegmentationClass/NAME.png`` (8-bit grey) for every image of the json, painted as CLIMS's
  ``mscoco/annToMask.py`` does: 0 everywhere, then each non-crowd annotation in the order
  ``COCO.getAnnIds(imgIds=id, iscrowd=False)`` gives (the json's order) sets the pixels where
  ``COCO.annToMask(ann) == 1`` to its class, later over earlier. With ``crowd="ignore"``
  crowd pixels still 0 afterwards become 255.
- ``ImageSets/Segmentation/{train,val}.txt``: the images with at least one annotation (crowd
  or not), sorted.
- ``im_tags.pkl`` / ``im_tags_val.pkl``: NAME -> sorted int64 classes of its label PNG (minus
  0 and 255) for the listed images that have one, in the published ``cue_file`` format.

The main process reads the json and sends worker processes chunks of images, each with its
own annotations (not the whole json). A rerun paints only the PNGs that are missing or cut
short and reads the others back for the tags; the settings are recorded with the PNGs, so a
rerun with another ``crowd`` mode refuses instead of mixing the two.
"""
import json
import os

import numpy as np
from pycocotools import mask as mask_utils

from lib.coco import (COCO_CATEGORIES, LABEL_FOLDER, LIST_NAMES, SPLITS, TAGS_FILES,
                      annotation_file, category_classes, image_folder, image_path, is_image_name)
from lib.dataset.description import list_path
from lib.dataset.tags import save_tags
from lib.errors import UserError, first_few, one_line
from lib.files import file_names, remove_temporary_files, write_names
from lib.image import is_complete_file, read_prediction_png, write_png
from lib.progress import progress_bar
from lib.records import read_record, record_differences, write_record
from lib.voc import IGNORE
from lib.workers import chunked, default_workers, imap_in_workers

CROWD_MODES = ("background", "ignore")
IMAGES_PER_TASK = 64  # images painted per task sent to a worker


def annotation_mask(segmentation, height, width):
    """``COCO.annToMask``: the H x W uint8 0/1 mask of a polygon list, an uncompressed RLE
    (``counts`` a list) or a compressed RLE, decoded as pycocotools does it. A segmentation
    pycocotools cannot decode is a ValueError (it raises a bare Exception for some)."""
    try:
        if isinstance(segmentation, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation["counts"], list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        return mask_utils.decode(rle)
    except Exception as exc:
        raise ValueError(one_line(exc) or type(exc).__name__) from None


def paint_labels(height, width, annotations, crowd):
    """The label map of one image from its ``(class, iscrowd, segmentation)`` annotations in
    the json's order (module docstring). Painted in column-major order, the masks' own layout
    (2.5 times faster than row-major)."""
    labels = np.zeros((height, width), np.uint8, order="F")
    crowd_pixels = np.zeros((height, width), bool, order="F")
    for cls, iscrowd, segmentation in annotations:
        if iscrowd:
            if crowd == "ignore":
                crowd_pixels |= annotation_mask(segmentation, height, width) == 1
        else:
            labels[annotation_mask(segmentation, height, width) == 1] = cls
    labels[crowd_pixels & (labels == 0)] = IGNORE
    return np.ascontiguousarray(labels)


def present_classes(labels):
    """Sorted int64 classes of a label map: its unique values minus 0 and 255."""
    values = np.unique(labels)
    return values[(values != 0) & (values != IGNORE)].astype(np.int64)


def _label_chunk(job):
    """Worker: write the missing or cut-short PNGs of a chunk of images; return
    ``(name, classes, written)`` for each."""
    folder, crowd, source, chunk = job
    results = []
    for name, height, width, annotations in chunk:
        path = os.path.join(folder, name + ".png")
        written = not is_complete_file(path)
        if written:
            try:
                labels = paint_labels(height, width, annotations, crowd)
            except ValueError as exc:
                raise UserError(f"{source}: cannot decode a segmentation of {name}: "
                                f"{exc}") from None
            write_png(path, labels)
        else:
            labels = read_prediction_png(path)
        results.append((name, present_classes(labels), written))
    return results


def _not_coco(path, what):
    return UserError(f"{path} is not a COCO instances file: {what}")


def read_instances(path):
    """The parsed json ``path``: a dict with lists ``images``, ``annotations`` and
    ``categories``; a one-line UserError naming the file otherwise."""
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} as JSON: {one_line(exc)}") from None
    keys = ("images", "annotations", "categories")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in keys):
        raise _not_coco(path, "it needs the lists 'images', 'annotations' and 'categories'")
    return data


def _check_categories(data, path):
    """The json's ``{category id: class}``; UserError unless its categories are COCO's 80."""
    try:
        found = tuple(sorted((c["id"], c["name"]) for c in data["categories"]))
    except (KeyError, TypeError) as exc:
        raise _not_coco(path, f"a category lacks {one_line(exc)}") from None
    if found != COCO_CATEGORIES:
        extra = sorted(set(found) - set(COCO_CATEGORIES))
        lacking = sorted(set(COCO_CATEGORIES) - set(found))
        raise UserError(f"{path}: its categories are not COCO 2014's 80 (id, name) pairs: "
                        f"{len(extra)} others ({first_few(extra, 3)}), {len(lacking)} missing "
                        f"({first_few(lacking, 3)})")
    return category_classes(data["categories"])


def image_tasks(data, path, split):
    """``[name, height, width, [(class, iscrowd, segmentation), ...]]`` for every image of the
    json, its annotations in the json's order (the order of ``COCO.getAnnIds``)."""
    classes = _check_categories(data, path)
    images = {}
    try:
        for image in data["images"]:
            name = os.path.splitext(image["file_name"])[0]
            if not is_image_name(name) or image_folder(name) != split:
                raise _not_coco(path, f"image file name {image['file_name']!r} is not "
                                      f"COCO_{split}_<12 digits>.jpg")
            images[image["id"]] = [name, int(image["height"]), int(image["width"]), []]
    except (KeyError, TypeError, ValueError) as exc:
        raise _not_coco(path, f"an image entry lacks or mistypes {one_line(exc)}") from None
    try:
        for ann in data["annotations"]:
            entry, cls = images.get(ann["image_id"]), classes.get(ann["category_id"])
            if entry is None or cls is None or ann["iscrowd"] not in (0, 1):
                raise _not_coco(path, f"annotation {ann['id']} has an unknown image_id, an "
                                      "unknown category_id or an iscrowd other than 0 or 1")
            entry[3].append((cls, int(ann["iscrowd"]), ann["segmentation"]))
    except (KeyError, TypeError) as exc:
        raise _not_coco(path, f"an annotation lacks or mistypes {one_line(exc)}") from None
    return list(images.values())


def _check_images(root, tasks, path):
    missing = [name for name, *_ in tasks if not os.path.isfile(image_path(root, name))]
    if missing:
        folder = os.path.dirname(image_path(root, missing[0]))
        raise UserError(f"{len(missing)} images of {path} are not in {folder}: "
                        f"{first_few(missing, 3)}; unpack COCO's images there")


def _prepare_label_folder(folder, record):
    """Refuse to mix label PNGs of other settings into ``folder``; record ours. A folder
    without PNGs (deleted, or never painted) takes the new settings whatever its record says."""
    has_labels = os.path.isdir(folder) and bool(file_names(folder))
    saved = read_record(folder) if has_labels else None
    if has_labels and saved is None:
        raise UserError(f"{folder} holds PNGs but no record of the settings that made them; "
                        "move them away (or delete them) and rerun")
    if saved is not None and saved != record:
        hint = (f", or rerun with --crowd {saved['crowd']}"
                if saved.get("crowd") in CROWD_MODES else "")
        raise UserError(f"{folder} was made with other settings: "
                        f"{record_differences(saved, record)[0]}; delete it to remake it{hint}")
    remove_temporary_files(folder)
    if saved is None:
        os.makedirs(folder, exist_ok=True)
        write_record(folder, record)


def convert_split(root, split, crowd, workers, progress):
    """Labels, list and tags of one split; returns its counts (see :func:`run`)."""
    path = os.path.join(root, annotation_file(split))
    data = read_instances(path)
    tasks = image_tasks(data, path, split)
    del data  # the tasks keep what the workers need
    _check_images(root, tasks, path)
    folder = os.path.join(root, LABEL_FOLDER)
    listed = sorted(name for name, _, _, annotations in tasks if annotations)
    jobs = [(folder, crowd, path, chunk) for chunk in chunked(tasks, workers, IMAGES_PER_TASK)]
    classes, written = {}, 0
    with progress_bar(total=len(tasks), shown=progress, desc=split, unit="img") as bar:
        for results in imap_in_workers(_label_chunk, jobs, workers):
            for name, present, was_written in results:
                classes[name] = present
                written += was_written
            bar.update(len(results))
    tags = {name: classes[name] for name in listed if classes[name].size}
    write_names(list_path(root, LIST_NAMES[split]), listed)
    save_tags(tags, os.path.join(root, TAGS_FILES[split]))
    return {"images": len(tasks), "written": written, "listed": len(listed), "tagged": len(tags)}


def run(root, crowd="background", workers=None, progress=True):
    """Make both splits' labels, lists and tags under the COCO tree ``root``; return
    ``{split: {"images", "written" (PNGs painted by this run), "listed", "tagged"}}``."""
    if crowd not in CROWD_MODES:
        raise UserError(f"crowd must be one of {', '.join(CROWD_MODES)}, got {crowd!r}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise UserError(f"workers must be >= 0, got {workers}")
    missing = [annotation_file(s) for s in SPLITS
               if not os.path.isfile(os.path.join(root, annotation_file(s)))]
    if missing:
        raise UserError(f"{', '.join(missing)} not found in {root}: unpack COCO's "
                        "annotations_trainval2014.zip there (both splits are made)")
    _prepare_label_folder(os.path.join(root, LABEL_FOLDER), {"crowd": crowd})
    return {split: convert_split(root, split, crowd, workers, progress) for split in SPLITS}
