"""The dataset descriptions every stage reads (dataset_name): VOC 2012 and COCO 2014."""
import os

import numpy as np
import pytest

from lib.config import load_config
from lib.dataset.description import DATASETS, dataset_description
from lib.dataset.tags import load_tags, save_tags
from lib.errors import ConfigError, UserError


def test_voc_numbers_are_the_published_ones():
    voc = dataset_description("voc12_sgan")
    assert dataset_description("voc12") is voc
    assert (voc.num_fg_classes, voc.num_classes, voc.unlabeled, voc.seed_classes,
            voc.seed_ignore) == (20, 21, 21, 22, 20)
    assert voc.class_names[:2] == ("background", "aeroplane") and voc.class_names[-1] == "tvmonitor"
    assert voc.boat_train_classes == (4, 19)
    assert voc.image_path("/d", "2007_000032") == os.path.join("/d", "JPEGImages", "2007_000032.jpg")
    assert voc.image_relative_path("2007_000032") == os.path.join("JPEGImages", "2007_000032.jpg")
    assert voc.segmentation_gt.rstrip("/") == "SegmentationClass"
    assert voc.seed_gt.rstrip("/") == "SegmentationClassAug"


def test_coco_takes_its_classes_in_category_id_order():
    coco = dataset_description("coco14")
    assert (coco.num_fg_classes, coco.num_classes, coco.unlabeled, coco.seed_classes,
            coco.seed_ignore) == (80, 81, 81, 82, 80)
    assert coco.class_names[:3] == ("background", "person", "bicycle")
    assert coco.class_names[12] == "stop sign" and coco.class_names[80] == "toothbrush"
    assert coco.boat_train_classes == (9, 7)
    assert coco.image_path("/c", "COCO_val2014_000000000042") == \
        os.path.join("/c", "val2014", "COCO_val2014_000000000042.jpg")
    assert coco.segmentation_gt == coco.seed_gt == "SegmentationClass/"


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_label_value_has_its_own_colour(name):
    description = dataset_description(name)
    colours = description.palette[:description.unlabeled + 1]  # classes and unlabeled
    assert len({tuple(c) for c in colours}) == len(colours)
    assert description.palette.shape == (256, 3) and description.palette.dtype == np.uint8


def test_a_typo_is_one_line_with_the_nearest_name():
    with pytest.raises(UserError) as error:
        dataset_description("coco2014")
    assert "did you mean 'coco14'?" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(UserError, match="one of voc12_sgan, voc12, coco14"):
        dataset_description("cityscapes")
    with pytest.raises(ConfigError, match="did you mean 'voc12_sgan'"):
        load_config(None, ["dataset_name=voc12sgan"])  # the config checks it when it loads


def test_num_classes_is_the_datasets_segmentation_or_seed_count():
    assert load_config(None, ["dataset_name=coco14", "num_classes=82"]).num_classes == 82
    assert load_config(None, ["dataset_name=coco14", "num_classes=81"]).num_classes == 81
    assert load_config(None, ["dataset_name=coco14"]).num_classes == 82  # unset: the seeds'
    assert load_config(None, []).num_classes == 22  # VOC's, the paper's value
    with pytest.raises(ConfigError, match="must be 81 .segmentation. or 82 .seeds"):
        load_config(None, ["dataset_name=coco14", "num_classes=22"])


def test_gt_path_is_the_datasets_seed_ground_truth_unless_given():
    assert load_config(None, ["dataset_name=coco14"]).gt_path == "SegmentationClass/"
    assert load_config(None, []).gt_path == "SegmentationClassAug/"  # VOC's, the paper's value
    given = load_config(None, ["dataset_name=coco14", "gt_path=labels/"])
    assert given.gt_path == "labels/"


def test_tags_outside_the_datasets_classes_name_the_file_and_image(tmp_path):
    voc, coco = dataset_description("voc12"), dataset_description("coco14")
    path = str(tmp_path / "im_tags.pkl")
    save_tags({"a": [1, 20], "b": [3, 57]}, path)
    assert sorted(load_tags(path, coco)) == ["a", "b"]
    with pytest.raises(UserError) as error:
        load_tags(path, voc)
    assert str(error.value) == (f"{path}: tags of 'b' must be classes in 1..20 (dataset voc12), "
                                f"got [3, 57]")
