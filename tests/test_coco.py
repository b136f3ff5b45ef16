"""COCO 2014 (recipe 14.1): lib/coco.py, the synthetic COCO tree, and tools/make_coco_labels.py
checked against labels painted in the test with pycocotools' own COCO API."""
import json
import os
import pickle
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from conftest import REPO
from lib.coco import (COCO_CATEGORIES, COCO_CLASSES, COCO_PALETTE, NUM_FG_CLASSES, SPLITS,
                      category_classes, class_names, image_folder, image_path, is_image_name)
from lib.dataset.coco_labels import run
from lib.errors import UserError
from lib.image import read_image
from lib.tooling.synthetic_coco import generate_coco_dataset
from lib.voc import VOC_PALETTE

NUM_IMAGES = 10
pytestmark = pytest.mark.filterwarnings(  # pycocotools 2.0.11 under NumPy 2, harmless
    "ignore:__array__ implementation doesn.t accept a copy keyword:DeprecationWarning")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A 10-image synthetic COCO tree without labels (33..97 px)."""
    root = tmp_path_factory.mktemp("coco_source")
    generate_coco_dataset(root, num_images=NUM_IMAGES, min_size=33, max_size=97, seed=3)
    return root


def converted(tree, tmp_path, crowd="background"):
    root = tmp_path / f"coco_{crowd}"
    shutil.copytree(tree, root)
    counts = run(str(root), crowd=crowd, workers=2, progress=False)
    return root, counts


def load_coco(root, split):
    return COCO(str(root / "annotations" / f"instances_{split}.json"))


def expected_labels(coco, image_id, crowd):
    """CLIMS's annToMask rule, written out: classes 1..80 by increasing category id; 0, then
    each non-crowd annotation in getAnnIds order over the earlier ones; with crowd 'ignore',
    crowd pixels still 0 become 255."""
    cls = {cid: k + 1 for k, cid in enumerate(sorted(coco.getCatIds()))}
    info = coco.loadImgs(image_id)[0]
    labels = np.zeros((info["height"], info["width"]), np.uint8)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False)):
        labels[coco.annToMask(ann) == 1] = cls[ann["category_id"]]
    if crowd == "ignore":
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=True)):
            labels[(coco.annToMask(ann) == 1) & (labels == 0)] = 255
    return labels


def read_png(path):
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert labels is not None and labels.dtype == np.uint8 and labels.ndim == 2
    return labels


def read_tags(path):
    data = path.read_bytes()
    assert b"cnumpy.core.multiarray\n" in data  # the published cue_file's pickle format
    return pickle.loads(data)


# lib/coco.py

def test_category_ids_map_to_classes_in_increasing_id():
    categories = [{"id": cid, "name": name} for cid, name in reversed(COCO_CATEGORIES)]
    classes = category_classes(categories)
    assert classes[1] == 1 and classes[11] == 11 and classes[13] == 12 and classes[90] == 80
    assert sorted(classes.values()) == list(range(1, 81))
    assert class_names(categories) == COCO_CLASSES and len(COCO_CLASSES) == NUM_FG_CLASSES + 1
    assert COCO_CLASSES[0] == "background" and COCO_CLASSES[80] == "toothbrush"
    assert COCO_CLASSES.index("train") == 7 and COCO_CLASSES.index("boat") == 9


def test_image_names_say_their_folder():
    assert is_image_name("COCO_val2014_000000000042")
    assert image_folder("COCO_val2014_000000000042") == "val2014"
    assert image_path("/d", "COCO_train2014_000000000009") == \
        os.path.join("/d", "train2014", "COCO_train2014_000000000009.jpg")
    for bad in ("COCO_val2014_42", "2008_000001", "COCO_val2014_000000000042.jpg"):
        assert not is_image_name(bad)
        with pytest.raises(ValueError):
            image_folder(bad)


def test_palette_colours_are_far_apart():
    assert COCO_PALETTE.shape == (256, 3) and COCO_PALETTE.dtype == np.uint8
    assert (COCO_PALETTE[0] == 0).all() and (COCO_PALETTE[255] == VOC_PALETTE[255]).all()
    lab = cv2.cvtColor(COCO_PALETTE[None, :81].astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[0]
    distance = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    assert distance.min() > 20  # CIELAB units: VOC's own first 82 colours come down to 2.6
    to_ignore = np.linalg.norm(lab - cv2.cvtColor(COCO_PALETTE[None, 255:].astype(np.float32)
                                                  / 255, cv2.COLOR_RGB2Lab)[0], axis=-1)
    assert to_ignore.min() > 20


# the synthetic tree

def test_synthetic_tree_has_what_coco_has(tree):
    kinds, overlaps, crowd_covered = set(), 0, 0
    empty = only_crowd = 0
    for split in SPLITS:
        coco = load_coco(tree, split)
        assert [c["id"] for c in coco.loadCats(coco.getCatIds())] == [i for i, _ in COCO_CATEGORIES]
        for image_id in coco.getImgIds():
            info = coco.loadImgs(image_id)[0]
            assert (tree / split / info["file_name"]).is_file()
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            empty += not anns
            only_crowd += bool(anns) and all(a["iscrowd"] for a in anns)
            for a in anns:
                s = a["segmentation"]
                kinds.add(("polygon" if isinstance(s, list) else
                           "uncompressed" if isinstance(s["counts"], list) else "compressed",
                           a["iscrowd"]))
            plain = [coco.annToMask(a) for a in anns if not a["iscrowd"]]
            overlaps += any((p & q).any() for i, p in enumerate(plain) for q in plain[i + 1:])
            crowd = [coco.annToMask(a) for a in anns if a["iscrowd"]]
            crowd_covered += any((c & p).any() for c in crowd for p in plain)
    assert {("polygon", 0), ("compressed", 0), ("uncompressed", 0), ("uncompressed", 1)} <= kinds
    assert overlaps and crowd_covered and empty and only_crowd
    grey = [p for p in (tree / "train2014").iterdir()
            if cv2.imread(str(p), cv2.IMREAD_UNCHANGED).ndim == 2]
    assert grey, "no grey JPEG"
    colour = read_image(str(grey[0]))  # read as 3-channel colour like every image
    assert colour.ndim == 3 and colour.shape[2] == 3
    assert (colour[..., 0] == colour[..., 1]).all() and (colour[..., 1] == colour[..., 2]).all()
    names = sorted(p.stem for s in SPLITS for p in (tree / s).iterdir())
    for sub in ("sal/sal_snet", "ini_seed/base_30_bg"):
        assert sorted(p.stem for p in (tree / sub).iterdir()) == names
    seeds = np.concatenate([read_png(p).ravel() for p in (tree / "ini_seed/base_30_bg").iterdir()])
    assert seeds.max() <= NUM_FG_CLASSES and (seeds > 20).any()  # COCO's classes, not VOC's


# the converter

@pytest.mark.parametrize("crowd", ["background", "ignore"])
def test_labels_lists_and_tags_are_clims_annotomask(tree, tmp_path, crowd):
    root, counts = converted(tree, tmp_path, crowd)
    seen_ignore = False
    for split, list_name, tags_name in zip(SPLITS, ("train", "val"),
                                           ("im_tags.pkl", "im_tags_val.pkl")):
        coco = load_coco(root, split)
        listed, tags = [], {}
        for image_id in coco.getImgIds():
            name = os.path.splitext(coco.loadImgs(image_id)[0]["file_name"])[0]
            labels = read_png(root / "SegmentationClass" / f"{name}.png")
            want = expected_labels(coco, image_id, crowd)
            np.testing.assert_array_equal(labels, want, err_msg=name)
            seen_ignore |= bool((want == 255).any())
            if coco.getAnnIds(imgIds=image_id):
                listed.append(name)
                present = np.setdiff1d(np.unique(want), [0, 255])
                if present.size:
                    tags[name] = present
        assert counts[split]["images"] == counts[split]["written"] == len(coco.getImgIds())
        lines = (root / "ImageSets" / "Segmentation" / f"{list_name}.txt").read_text().splitlines()
        assert lines == sorted(listed)
        saved = read_tags(root / tags_name)
        assert list(saved) == sorted(tags)
        for name, classes in saved.items():
            assert classes.dtype == np.int64
            np.testing.assert_array_equal(classes, tags[name])
    assert seen_ignore == (crowd == "ignore")
    assert not list(root.rglob(".tmp-*"))


def test_later_annotations_paint_over_earlier_ones(tree, tmp_path):
    """The synthetic tree has overlapping annotations; painting them in reverse order would
    give other labels, so the check above tests the order."""
    root, _ = converted(tree, tmp_path)
    coco = load_coco(root, "train2014")
    differs = 0
    for image_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False))
        name = os.path.splitext(coco.loadImgs(image_id)[0]["file_name"])[0]
        reverse = np.zeros_like(read_png(root / "SegmentationClass" / f"{name}.png"))
        for ann in reversed(anns):
            reverse[coco.annToMask(ann) == 1] = category_classes(coco.dataset["categories"])[
                ann["category_id"]]
        differs += not np.array_equal(reverse, expected_labels(coco, image_id, "background"))
    assert differs


def test_a_rerun_writes_only_missing_or_cut_short_pngs(tree, tmp_path):
    root, _ = converted(tree, tmp_path)
    folder = root / "SegmentationClass"
    pngs = sorted(folder.glob("*.png"))
    before = {p.name: p.read_bytes() for p in pngs}
    for p in pngs:
        os.utime(p, (1e9, 1e9))
    pngs[0].unlink()
    pngs[-1].write_bytes(before[pngs[-1].name][:len(before[pngs[-1].name]) // 2])
    (root / "im_tags.pkl").unlink()
    counts = run(str(root), workers=0, progress=False)
    assert sum(c["written"] for c in counts.values()) == 2
    for p in pngs:
        assert p.read_bytes() == before[p.name]
        assert (os.stat(p).st_mtime == 1e9) == (p not in (pngs[0], pngs[-1]))
    assert (root / "im_tags.pkl").is_file()


def test_a_rerun_with_another_crowd_mode_refuses_until_the_labels_are_deleted(tree, tmp_path):
    root, _ = converted(tree, tmp_path)
    with pytest.raises(UserError, match="crowd background -> ignore; delete it to remake it"):
        run(str(root), crowd="ignore", workers=0, progress=False)
    shutil.rmtree(root / "SegmentationClass")  # as the message says; its record stays beside
    counts = run(str(root), crowd="ignore", workers=0, progress=False)
    assert sum(c["written"] for c in counts.values()) == NUM_IMAGES
    labels = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in root.glob("SegmentationClass/*")]
    assert any((label == 255).any() for label in labels)  # crowd pixels now ignored


def test_bad_inputs_are_one_line(tree, tmp_path):
    root = tmp_path / "coco"
    shutil.copytree(tree, root)
    jpeg = root / "val2014" / "COCO_val2014_000000000005.jpg"
    jpeg.unlink()
    with pytest.raises(UserError) as error:
        run(str(root), workers=0, progress=False)
    assert "COCO_val2014_000000000005" in str(error.value) and "\n" not in str(error.value)
    shutil.copy(root / "train2014" / "COCO_train2014_000000000001.jpg", jpeg)
    val_json = root / "annotations" / "instances_val2014.json"
    data = json.loads(val_json.read_text())
    data["annotations"][0].pop("segmentation")
    val_json.write_text(json.dumps(data))
    with pytest.raises(UserError, match="instances_val2014.json is not a COCO instances file"):
        run(str(root), workers=0, progress=False)
    data["annotations"][0]["segmentation"] = [[1.0, 2.0]]  # pycocotools: a bare Exception
    val_json.write_text(json.dumps(data))
    with pytest.raises(UserError, match="instances_val2014.json: cannot decode a segmentation"):
        run(str(root), workers=0, progress=False)
    val_json.unlink()
    with pytest.raises(UserError, match="instances_val2014.json not found"):
        run(str(root), workers=0, progress=False)


def test_the_script_refuses_a_json_that_is_not_coco_in_one_line(tree, tmp_path):
    root = tmp_path / "coco"
    shutil.copytree(tree, root)
    (root / "annotations" / "instances_train2014.json").write_text('{"images": []}')
    result = subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_coco_labels.py"),
                             "--dataset_root", str(root)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {root / 'annotations' / 'instances_train2014.json'} is not a COCO instances "
        "file: it needs the lists 'images', 'annotations' and 'categories'"]
