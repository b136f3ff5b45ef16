"""Evaluate seeds or segmentation results: mIoU, mean precision and mean recall (SPEC section 7).

    python tools/eval_mIoU.py --res_path DIR --num_classes 22 [--gt_path DIR]
        [--cfg_file CFG [key=value ...]] [--json FILE] [--list FILE] [--workers N]
    python tools/eval_mIoU.py --curve [--maps DIR | --res_path DIR | --cfg_file CFG]
        [--thresholds 0.05:0.95:0.05] [--curve_plot FILE] [--json FILE] ...

Without --gt_path the ground truth is the config's dataset_root/gt_path for seeds (22
classes) and dataset_root/SegmentationClass for segmentation (21); without --res_path
the results are the config's res_path/<cfg_name><test_cfg> (the folder inference writes).
--curve sweeps cam_thresh over the class maps infer_cam saved with save_class_maps=true
(default folder: the results folder + "_maps") and prints precision, recall and mIoU per
threshold; --curve_plot draws the precision-recall curve.
"""
import argparse

from lib.class_maps import class_maps_dir
from lib.config import dataset_path, load_config, result_dir
from lib.dataset.names import evaluation_names, read_names
from lib.evaluate import default_workers, evaluate_folder, format_table, result_json_bytes
from lib.errors import UserError
from lib.threshold_sweep import (DEFAULT_THRESHOLDS, curve_json_bytes, curve_plot_png, format_curve,
                                 parse_thresholds, sweep_thresholds)
from lib.utils.cli import run_main
from lib.utils.io import atomic_write_bytes


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--res_path", help="folder of prediction PNGs (default: from the config)")
    parser.add_argument("--gt_path", help="folder of ground-truth PNGs "
                        "(default: the config's dataset_root/gt_path)")
    parser.add_argument("--num_classes", type=int, choices=(21, 22),
                        help="22 = seeds (class 21 unlabeled), 21 = segmentation "
                             "(default: the config's num_classes, else 22)")
    parser.add_argument("--cfg_file", help="YAML config file")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, typed by YAML rules")
    parser.add_argument("--json", help="also write the scores to this JSON file")
    parser.add_argument("--list", help="the names to evaluate, one per line ('JPEGImages/NAME.jpg "
                        "...' lines are reduced to NAME); default: the config's tags file "
                        "with --cfg_file, else every ground-truth PNG")
    parser.add_argument("--strict", action=argparse.BooleanOptionalAction, default=True,
                        help="require a prediction for every name (default); --no-strict "
                        "evaluates the predictions there are")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"decoding processes (default {default_workers()}; 0 or 1 = none)")
    curve = parser.add_argument_group("threshold sweep (seeds from saved class maps)")
    curve.add_argument("--curve", action="store_true",
                       help="sweep cam_thresh instead of evaluating a folder of PNGs")
    curve.add_argument("--maps", help="class-map folder (default: the results folder + _maps)")
    curve.add_argument("--thresholds", nargs="+", default=[DEFAULT_THRESHOLDS],
                       metavar="T", help="start:stop:step (stop included) and/or numbers "
                       f"(default {DEFAULT_THRESHOLDS})")
    curve.add_argument("--curve_plot", help="write the precision-recall plot to this PNG")
    return parser


SEED_CLASSES = 22  # seed mode: 21 = unlabeled; 21 classes = segmentation mode
SEGMENTATION_GT = "SegmentationClass/"  # SPEC section 7: segmentation results are scored here


def resolve_paths(args, cfg):
    """(res_path, gt_path, num_classes) from the arguments, filling gaps from the config."""
    res_path = args.res_path
    if res_path is None:
        if args.cfg_file is None:
            raise UserError("give --res_path (or --cfg_file to use its res_path)")
        res_path = result_dir(cfg)
    num_classes = args.num_classes or cfg.num_classes
    default_gt = cfg.gt_path if num_classes == SEED_CLASSES else SEGMENTATION_GT
    gt_path = args.gt_path or dataset_path(cfg, default_gt)
    return res_path, gt_path, num_classes


def _write(path, data):
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc}") from None
    print(f"wrote {path}")


def run_curve(args):
    """--curve: the cam_thresh sweep over saved class maps."""
    cfg = load_config(args.cfg_file, args.overrides)
    if (args.num_classes or cfg.num_classes) != 22:
        raise UserError("--curve evaluates seeds: it needs --num_classes 22")
    if args.maps:
        maps = args.maps
    elif args.res_path or args.cfg_file:
        maps = class_maps_dir(args.res_path or result_dir(cfg))
    else:
        raise UserError("give --maps (or --res_path / --cfg_file to use their _maps folder)")
    gt_path = args.gt_path or dataset_path(cfg, cfg.gt_path)
    names = read_names(args.list) if args.list else None
    points = sweep_thresholds(maps, gt_path, parse_thresholds(args.thresholds),
                              ignore_conflict=cfg.ignore_conflict, names=names,
                              workers=args.workers)
    print(f"class maps: {maps}\nground truth: {gt_path}")
    print(format_curve(points))
    if args.curve_plot:
        _write(args.curve_plot, curve_plot_png(points))
    if args.json:
        _write(args.json, curve_json_bytes(points))
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.curve:
        return run_curve(args)
    cfg = load_config(args.cfg_file, args.overrides)
    res_path, gt_path, num_classes = resolve_paths(args, cfg)
    seeds_of_config = args.cfg_file and num_classes == SEED_CLASSES
    names = evaluation_names(res_path, gt_path, args.list,
                             dataset_path(cfg, cfg.cue_file) if seeds_of_config else None,
                             args.strict)
    result = evaluate_folder(res_path, gt_path, num_classes, names=names, workers=args.workers)
    print(f"predictions: {res_path}\nground truth: {gt_path}")
    print(format_table(result))
    if args.json:
        _write(args.json, result_json_bytes(result))
    return 0


if __name__ == "__main__":
    run_main(main)
