"""The image-level tags file (``im_tags.pkl``) from segmentation masks or VOC XML annotations.

The dataset's description (``dataset_name``) says which classes a mask or an XML file may
hold; COCO's tags come with its labels from ``tools/make_coco_labels.py``.

The published file took its tags from ``SegmentationClassAug`` (recipe 1): the unique
labels of each mask minus 0 (background) and 255 (ignore). From ``Annotations/*.xml`` the tags
are the classes of the ``object/name`` entries (difficult and truncated objects included;
person-layout ``part`` names are not objects). Images with no foreground class are skipped:
a tag list must not be empty.
"""
import os
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image

from lib.dataset.description import VOC12, dataset_description
from lib.dataset.tags import save_tags
from lib.errors import UserError, first_few
from lib.files import file_names, read_names
from lib.voc import IGNORE


def tags_from_mask(path, dataset=VOC12):
    """Classes of a label-index PNG (palette or grey): unique labels minus 0 and 255; each
    one of ``dataset``'s 1..C."""
    with Image.open(path) as image:
        if image.mode not in ("P", "L"):
            raise UserError(f"{path}: expected a label-index PNG (mode P or L), got mode "
                            f"{image.mode}")
        labels = np.unique(np.asarray(image))
    classes = labels[(labels != 0) & (labels != IGNORE)].astype(np.int64)
    if classes.size and classes.max() > dataset.num_fg_classes:
        raise UserError(f"{path}: label {classes.max()} is not a class of {dataset.name} "
                        f"(0..{dataset.num_fg_classes}, 255 ignore)")
    return classes


def tags_from_xml(path, dataset=VOC12):
    """Sorted unique classes of the ``object/name`` entries of a VOC XML annotation (names of
    ``dataset``'s classes)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise UserError(f"{path}: not valid XML ({exc})") from None
    names = [(obj.findtext("name") or "").strip().lower() for obj in root.findall("object")]
    unknown = sorted(set(names) - set(dataset.class_names[1:]))
    if unknown:
        raise UserError(f"{path}: unknown object names {unknown} (expected class names of "
                        f"{dataset.name})")
    return np.unique(np.array([dataset.class_index(n) for n in names], dtype=np.int64))


SOURCES = {"masks": (".png", tags_from_mask), "xml": (".xml", tags_from_xml)}


def collect_tags(folder, source="masks", names=None, dataset=VOC12):
    """Return (tags, skipped): ``{name: classes}`` for the images with a foreground class and
    the names without one. ``names`` None means every ``.png`` (masks) or ``.xml`` in ``folder``."""
    suffix, read = SOURCES[source]
    if names is None:
        names = file_names(folder, suffix)
        if not names:
            raise UserError(f"no {suffix} files in {folder}")
    missing = [n for n in names if not os.path.isfile(os.path.join(folder, n + suffix))]
    if missing:
        raise UserError(f"{len(missing)} listed images have no {suffix} file in {folder}: "
                        + first_few(missing))
    tags, skipped = {}, []
    for name in names:
        classes = read(os.path.join(folder, name + suffix), dataset)
        if classes.size:
            tags[name] = classes
        else:
            skipped.append(name)
    return tags, skipped


def json_path(pkl_path):
    """The JSON twin of a ``.pkl`` tags file: same name, ``.json``."""
    return os.path.splitext(pkl_path)[0] + ".json"


def run(folder, out_path, source="masks", list_path=None, dataset_name="voc12_sgan"):
    """Write ``out_path`` (published pickle) and its ``.json`` twin; return (tags, skipped)."""
    dataset = dataset_description(dataset_name)
    if not out_path.endswith(".pkl"):
        raise UserError(f"the output must be a .pkl file (a .json twin is written beside it), "
                        f"got {out_path}")
    names = read_names(list_path) if list_path else None
    tags, skipped = collect_tags(folder, source, names, dataset)
    if not tags:
        raise UserError(f"no image in {folder} has a foreground class; nothing to write")
    save_tags(tags, out_path)
    save_tags(tags, json_path(out_path))
    return tags, skipped
