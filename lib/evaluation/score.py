"""The evaluation step of ``tools/eval_mIoU.py``: which folders and names to score, then the
table and the JSON file (recipe 7 and 9).

The dataset (``dataset_name``: VOC by default, COCO) gives the class count C and names.
Seeds are scored with C + 2 classes (VOC 22, COCO 82), segmentation results with C + 1.
Without ``gt_path`` the ground truth is the config's ``dataset_root``/``gt_path`` for seeds
and the dataset's segmentation ground truth (``SegmentationClass``) for segmentation; without
``res_path`` the predictions are the config's results folder (what inference writes: the seeds
of infer_cam, or the labels of infer_seg for the config's split), and with a config the names
are its tags file's (seeds) or its split's (segmentation).
"""
import os

from lib.dataset.description import describe
from lib.errors import UserError
from lib.evaluation.folder import (
    evaluate_folder,
    evaluation_names,
    format_table,
    result_json_bytes,
)
from lib.files import write_output
from lib.paths import (
    check_dataset_paths,
    dataset_path,
    result_dir,
    segmentation_dir,
    split_list_path,
)

# The config keys the evaluation reads (lib.cli warns of an override it does not read): seeds
# are found by their folder's name and scored against gt_path on the tags file's names,
# segmentation results by their split.
COMMON_KEYS = frozenset({"cfg_name", "dataset_name", "dataset_root", "num_classes", "res_path"})
SEED_KEYS = COMMON_KEYS | {"cue_file", "gt_path", "test_cfg"}
SEGMENTATION_KEYS = COMMON_KEYS | {"split"}


def scores_seeds(cfg):
    """Whether ``cfg`` scores seeds (its ``num_classes`` is its dataset's C + 2), not
    segmentation results (C + 1)."""
    return cfg.num_classes == describe(cfg).seed_classes


def config_keys(cfg):
    """The keys the evaluation of ``cfg`` reads: SEED_KEYS or SEGMENTATION_KEYS."""
    return SEED_KEYS if scores_seeds(cfg) else SEGMENTATION_KEYS


def evaluation_paths(cfg, res_path=None, gt_path=None, from_file=False):
    """(res_path, gt_path) as given, the gaps filled from the config (its ``num_classes`` says
    seeds or segmentation). ``from_file``: the config came from a file (else it is the
    defaults alone). A default ground-truth folder that does not exist is a one-line error
    that says it is a default."""
    if res_path is None and not from_file:
        raise UserError("give --res_path (or --cfg_file to use its res_path)")
    dataset = describe(cfg)
    seeds = scores_seeds(cfg)
    if res_path is None:
        res_path = result_dir(cfg) if seeds else segmentation_dir(cfg)
    if gt_path is None:
        gt_path = dataset_path(cfg, cfg.gt_path if seeds else dataset.segmentation_gt)
        if not os.path.isdir(gt_path):
            if from_file:
                check_dataset_paths(cfg)  # names dataset_root when it is the cause
            rule = ("dataset_root/gt_path" if seeds else
                    f"dataset_root/{dataset.segmentation_gt.rstrip('/')}")
            source = ("of --cfg_file" if from_file else
                      "of the default config (no --cfg_file)")
            raise UserError(f"ground-truth folder not found: {gt_path}, the default ({rule} "
                            f"{source}): give --gt_path DIR"
                            + ("" if from_file else ", or --cfg_file with its dataset_root"))
    return res_path, gt_path


def run(cfg, res_path=None, gt_path=None, list_path=None, strict=True, workers=None,
        json_path=None, from_file=False):
    """Score a folder of predictions with the config's ``num_classes`` (seeds or segmentation
    of its dataset), print the table, write ``json_path`` if given; return the result of
    :func:`lib.evaluation.folder.evaluate_folder`."""
    res_path, gt_path = evaluation_paths(cfg, res_path, gt_path, from_file)
    dataset = describe(cfg)
    seeds = scores_seeds(cfg)
    seeds_of_config = from_file and seeds
    if from_file and not seeds and list_path is None:
        list_path = split_list_path(cfg)
    if seeds_of_config and list_path is None:
        check_dataset_paths(cfg, "cue_file")  # the names are the tags file's
    names, unscored = evaluation_names(
        res_path, gt_path, list_path,
        dataset_path(cfg, cfg.cue_file) if seeds_of_config else None, strict, dataset)
    result = evaluate_folder(res_path, gt_path, cfg.num_classes, names=names, workers=workers,
                             dataset=dataset)
    print(f"predictions: {res_path}\nground truth: {gt_path}\n"
          f"ground-truth files not scored: {unscored} of {unscored + len(names)}")
    print(format_table(result))
    print("(the table in percent; --json writes fractions in 0..1)")
    if json_path:
        write_output(json_path, result_json_bytes(result))
    return result
