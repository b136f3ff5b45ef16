"""Evaluate seeds or segmentation results: mIoU, mean precision and mean recall (SPEC section 7).

    python tools/eval_mIoU.py --res_path DIR --num_classes 22 [--gt_path DIR]
        [--cfg_file CFG [key=value ...]] [--json FILE] [--list FILE] [--workers N]

Without --gt_path the ground truth is the config's dataset_root/gt_path; without --res_path
the results are the config's res_path/<cfg_name><test_cfg> (the folder inference writes).
"""
import argparse
import os

from lib.config import dataset_path, load_config, result_dir
from lib.evaluate import default_workers, evaluate_folder, format_table, result_json_bytes
from lib.errors import UserError
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
    parser.add_argument("--list", help="evaluate only the names in this file (one per line; "
                        "'JPEGImages/NAME.jpg ...' lines are reduced to NAME)")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"decoding processes (default {default_workers()}; 0 or 1 = none)")
    return parser


def read_name_list(path):
    """Image names from a list file: the first token of each line, folder and extension removed."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read list file {path}: {exc}") from None
    names = [os.path.splitext(os.path.basename(line.split()[0]))[0]
             for line in lines if line.strip()]
    if not names:
        raise UserError(f"list file {path} has no names")
    return names


def resolve_paths(args):
    """(res_path, gt_path, num_classes) from the arguments, filling gaps from the config."""
    cfg = load_config(args.cfg_file, args.overrides)
    res_path = args.res_path
    if res_path is None:
        if args.cfg_file is None:
            raise UserError("give --res_path (or --cfg_file to use its res_path)")
        res_path = result_dir(cfg)
    gt_path = args.gt_path or dataset_path(cfg, cfg.gt_path)
    num_classes = args.num_classes or cfg.num_classes
    return res_path, gt_path, num_classes


def main(argv=None):
    args = build_parser().parse_args(argv)
    res_path, gt_path, num_classes = resolve_paths(args)
    names = read_name_list(args.list) if args.list else None
    result = evaluate_folder(res_path, gt_path, num_classes, names=names, workers=args.workers)
    print(f"predictions: {res_path}\nground truth: {gt_path}")
    print(format_table(result))
    if args.json:
        try:
            atomic_write_bytes(args.json, result_json_bytes(result))
        except OSError as exc:
            raise UserError(f"cannot write {args.json}: {exc}") from None
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    run_main(main)
