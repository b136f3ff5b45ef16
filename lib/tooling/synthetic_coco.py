"""A small synthetic dataset in COCO 2014's layout (recipe 14.1), for tests and demos.

It holds what COCO's downloads hold, plus the maps the stages read:
- ``train2014/`` and ``val2014/``: JPEGs named ``COCO_<split>_<12-digit image id>`` (every 5th
  image is in val2014); image ``i`` is scene ``i`` of lib.tooling.synthetic_scene with its
  classes among COCO's 80, drawn from ``numpy.random.default_rng([seed, i])`` as for VOC.
- ``annotations/instances_{train,val}2014.json``: COCO's 80 categories; one annotation per
  object, back to front, each the object's whole (overlapping) mask, so that painting them in
  order gives what the image shows. Segmentations rotate through polygons, compressed RLE and
  uncompressed RLE; some images have features COCO's images have (by index: ``i % 4 == 1`` its
  back object is a crowd annotation, uncompressed RLE, partly covered by the objects in front;
  ``i % 7 == 3`` no annotation at all; ``i % 7 == 5`` a grey, 1-channel JPEG).
- ``sal/<sal_subdir>/NAME.png`` saliency and ``ini_seed/<seed_subdir>/NAME.png`` CAM-like
  initial seeds (1..80), as the VOC generator writes them.

Label PNGs, lists and tags come from it as from the real data: tools/make_coco_labels.py.
"""
import json
import os

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from lib.coco import COCO_CATEGORIES, NUM_FG_CLASSES, SPLITS, annotation_file, image_name
from lib.files import atomic_write_bytes
from lib.image import write_jpg, write_png
from lib.tooling.synthetic import check_arguments, draw_image_size, split_train_val
from lib.tooling.synthetic_scene import generate_sample

POLYGON, COMPRESSED_RLE, UNCOMPRESSED_RLE = "polygon", "compressed RLE", "uncompressed RLE"
FORMATS = (POLYGON, COMPRESSED_RLE, UNCOMPRESSED_RLE)  # annotation id k takes FORMATS[k % 3]


def crowd_back(index):
    """Image ``index``'s back object is a crowd annotation."""
    return index % 4 == 1


def without_annotations(index):
    """Image ``index`` has no annotation in its json."""
    return index % 7 == 3


def grey_jpeg(index):
    """Image ``index`` is stored as a 1-channel JPEG."""
    return index % 7 == 5


def uncompressed_rle(mask):
    """COCO's uncompressed RLE of a 0/1 mask: run lengths in column-major order, 0s first."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def polygons(mask):
    """The outer contours of a 0/1 mask as COCO polygons ``[[x0, y0, x1, y1, ...], ...]``
    (at least 3 points each); empty if none."""
    contours, _ = cv2.findContours(np.ascontiguousarray(mask, np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def segmentation(mask, form):
    """A 0/1 mask as a COCO segmentation of ``form`` (a polygon-less mask falls back to RLE)."""
    parts = polygons(mask) if form == POLYGON else []
    if parts:
        return parts
    if form == UNCOMPRESSED_RLE:
        return uncompressed_rle(mask)
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def image_annotations(objects, index, image_id, first_id):
    """The COCO annotations of one image's ``(class, mask)`` objects (back to front), ids from
    ``first_id``."""
    if without_annotations(index):
        return []
    annotations = []
    for k, (cls, mask) in enumerate(objects):
        crowd = k == 0 and crowd_back(index)
        ann_id = first_id + len(annotations)
        form = UNCOMPRESSED_RLE if crowd else FORMATS[ann_id % len(FORMATS)]
        rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
        annotations.append({
            "id": ann_id, "image_id": image_id, "category_id": COCO_CATEGORIES[cls - 1][0],
            "iscrowd": int(crowd), "segmentation": segmentation(mask, form),
            "area": float(mask_utils.area(rle)), "bbox": mask_utils.toBbox(rle).tolist()})
    return annotations


def _instances(images, annotations):
    return {"info": {"description": "synthetic data in COCO 2014's instances format"},
            "licenses": [], "images": images, "annotations": annotations,
            "categories": [{"id": cid, "name": name} for cid, name in COCO_CATEGORIES]}


def generate_coco_dataset(root, num_images=40, min_size=64, max_size=128, seed=0, classes=None,
                          sal_subdir="sal_snet", seed_subdir="base_30_bg"):
    """Write a synthetic COCO 2014-format tree under ``root``; return the sorted image names.

    ``classes`` (default: all 80, as 1..80) limits which classes appear. Image ``i`` has
    image id ``i + 1``. Raises ``ValueError`` for bad arguments. Every file is written
    atomically.
    """
    classes = list(range(1, NUM_FG_CLASSES + 1)) if classes is None else [int(c) for c in classes]
    check_arguments(num_images, min_size, max_size, classes, sal_subdir, seed_subdir,
                    NUM_FG_CLASSES)
    root = os.fspath(root)
    _, val = split_train_val(list(range(num_images)))
    images = {split: [] for split in SPLITS}
    annotations = {split: [] for split in SPLITS}
    names = []
    for index in range(num_images):
        rng = np.random.default_rng([seed, index])
        height, width = draw_image_size(rng, min_size, max_size)
        sample = generate_sample(rng, height, width, classes, NUM_FG_CLASSES)
        split = SPLITS[1] if index in val else SPLITS[0]
        image_id = index + 1
        name = image_name(split, image_id)
        picture = sample["image"]
        if grey_jpeg(index):
            picture = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY)
        write_jpg(os.path.join(root, split, name + ".jpg"), picture, quality=95)
        write_png(os.path.join(root, "sal", sal_subdir, name + ".png"), sample["sal"])
        write_png(os.path.join(root, "ini_seed", seed_subdir, name + ".png"), sample["seed"])
        images[split].append({"id": image_id, "file_name": name + ".jpg", "height": height,
                              "width": width})
        first_id = 1 + sum(len(a) for a in annotations.values())
        annotations[split] += image_annotations(sample["objects"], index, image_id, first_id)
        names.append(name)
    for split in SPLITS:  # COCO's files do not list images in name order; nor do these
        data = json.dumps(_instances(images[split][::-1], annotations[split])).encode()
        atomic_write_bytes(os.path.join(root, annotation_file(split)), data)
    return sorted(names)
