import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from lib.dataset.description import dataset_description
from lib.dataset.make_tags import collect_tags, tags_from_mask, tags_from_xml
from lib.dataset.tags import load_tags
from lib.errors import UserError

XML_PERSON_DOG = """<annotation>
  <folder>VOC2012</folder>
  <filename>2008_000001.jpg</filename>
  <object>
    <name>person</name>
    <difficult>0</difficult>
    <part><name>head</name></part>
    <part><name>hand</name></part>
  </object>
  <object><name>dog</name><difficult>1</difficult></object>
  <object><name> person </name></object>
</annotation>
"""
XML_TABLE_PLANT = """<annotation>
  <object><name>pottedplant</name><truncated>1</truncated></object>
  <object><name>diningtable</name></object>
</annotation>
"""


def make_tags_cli(*args):
    return subprocess.run([sys.executable, "tools/make_tags.py", *args], cwd=REPO,
                          capture_output=True, text=True)


def test_tags_from_synthetic_masks_equal_the_generators(synth_voc, tmp_path):
    out = tmp_path / "im_tags.pkl"
    result = make_tags_cli("--masks", os.path.join(synth_voc, "SegmentationClassAug"),
                           "--list", os.path.join(synth_voc, "ImageSets", "Segmentation",
                                                  "train_aug.txt"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    expected = load_tags(os.path.join(synth_voc, "im_tags.pkl"))
    for path in (out, tmp_path / "im_tags.json"):
        got = load_tags(str(path))
        assert list(got) == list(expected)
        for name in expected:
            assert got[name].dtype == np.int64
            assert got[name].tolist() == expected[name].tolist()
    assert out.read_bytes() == open(os.path.join(synth_voc, "im_tags.pkl"), "rb").read()


def test_list_file_selects_names_and_background_only_masks_are_skipped(synth_voc, tmp_path):
    masks = tmp_path / "masks"
    shutil.copytree(os.path.join(synth_voc, "SegmentationClassAug"), masks)
    empty = np.zeros((20, 30), np.uint8)
    empty[5, :] = 255
    Image.fromarray(empty).save(masks / "2099_999999.png")
    listing = tmp_path / "train_aug.txt"
    listing.write_text("/JPEGImages/2099_000005.jpg /SegmentationClassAug/2099_000005.png\n"
                       "2099_999999\n\n2099_000001\n")
    out = tmp_path / "tags.pkl"
    result = make_tags_cli("--masks", str(masks), "--list", str(listing), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "skipped 1 images with no foreground class (2099_999999)" in result.stderr
    expected = load_tags(os.path.join(synth_voc, "im_tags.pkl"))
    got = load_tags(str(out))
    assert sorted(got) == ["2099_000001", "2099_000005"]
    assert got["2099_000005"].tolist() == expected["2099_000005"].tolist()


def test_mask_labels_minus_background_and_ignore(tmp_path):
    labels = np.array([[0, 15, 15], [255, 3, 0]], np.uint8)
    Image.fromarray(labels).save(tmp_path / "a.png")
    assert tags_from_mask(str(tmp_path / "a.png")).tolist() == [3, 15]
    Image.fromarray(np.stack([labels] * 3, axis=2)).save(tmp_path / "rgb.png")
    with pytest.raises(UserError, match="mode RGB"):
        tags_from_mask(str(tmp_path / "rgb.png"))


def test_mask_labels_are_checked_against_the_datasets_classes(tmp_path):
    Image.fromarray(np.array([[0, 57], [3, 255]], np.uint8)).save(tmp_path / "2099_000001.png")
    with pytest.raises(UserError, match=r"label 57 is not a class of voc12 \(0..20, 255 ignore"):
        tags_from_mask(str(tmp_path / "2099_000001.png"))
    out = tmp_path / "tags.pkl"
    refused = make_tags_cli("--masks", str(tmp_path), "--out", str(out))
    assert refused.returncode == 2 and "not a class of voc12" in refused.stderr
    result = make_tags_cli("--masks", str(tmp_path), "--out", str(out), "--dataset_name", "coco14")
    assert result.returncode == 0, result.stderr
    assert load_tags(str(out), dataset_description("coco14"))["2099_000001"].tolist() == [3, 57]


def test_tags_from_two_xml_annotations(tmp_path):
    ann = tmp_path / "Annotations"
    ann.mkdir()
    (ann / "2008_000001.xml").write_text(XML_PERSON_DOG)
    (ann / "2008_000002.xml").write_text(XML_TABLE_PLANT)
    assert tags_from_xml(str(ann / "2008_000001.xml")).tolist() == [12, 15]
    out = tmp_path / "xml_tags.pkl"
    result = make_tags_cli("--xml", str(ann), "--out", str(out))
    assert result.returncode == 0, result.stderr
    for path in (out, tmp_path / "xml_tags.json"):
        got = load_tags(str(path))
        assert {k: v.tolist() for k, v in got.items()} == {"2008_000001": [12, 15],
                                                           "2008_000002": [11, 16]}


def test_bad_inputs_are_one_line_errors(tmp_path):
    ann = tmp_path / "Annotations"
    ann.mkdir()
    (ann / "x.xml").write_text("<annotation><object><name>unicorn</name></object></annotation>")
    result = make_tags_cli("--xml", str(ann), "--out", str(tmp_path / "t.pkl"))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "unicorn" in result.stderr
    with pytest.raises(UserError, match="missing_one"):
        collect_tags(str(ann), "xml", ["x", "missing_one"])
    result = make_tags_cli("--xml", str(ann), "--out", str(tmp_path / "t.json"))
    assert result.returncode == 2 and ".pkl" in result.stderr
    assert not (tmp_path / "t.pkl").exists()
