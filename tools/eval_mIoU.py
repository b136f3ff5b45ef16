"""Evaluate seeds or segmentation results: mIoU, mean precision and mean recall (recipe 7).

    python tools/eval_mIoU.py --res_path DIR --num_classes 22 [--gt_path DIR] [--dataset_name D]
        [--cfg_file CFG [key=value ...]] [--json FILE] [--list FILE] [--workers N]

Seeds are scored with C + 2 classes (VOC 22, COCO 82), segmentation with C + 1; folders, names
and the dataset default to the config's (without --list or a config: every prediction).
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import (add_dataset_name, config_from_args, config_parser,  # noqa: E402
                     run_main, warn_unread)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--curve" in argv:  # the former spelling of tools/threshold_curve.py
        import threshold_curve
        return threshold_curve.main([arg for arg in argv if arg != "--curve"])
    parser = config_parser(__doc__.split("\n\n")[0], cfg_required=False)
    parser.add_argument("--res_path", help="folder of prediction PNGs (default: the config's)")
    parser.add_argument("--gt_path", help="folder of ground-truth PNGs (default: for seeds "
                        "the config's dataset_root/gt_path; for segmentation "
                        "dataset_root/SegmentationClass/, whatever gt_path says)")
    parser.add_argument("--num_classes", type=int, help="C + 2 = seeds (C + 1 unlabeled), C + 1 "
                        "= segmentation (default: the config's num_classes, else 22)")
    add_dataset_name(parser, None, "the config's dataset_name, else voc12_sgan")
    parser.add_argument("--json", help="also write the scores to this JSON file")
    parser.add_argument("--list", help="the names to evaluate (default: the config's tags "
                        "file or split with --cfg_file, else every prediction PNG)")
    parser.add_argument("--strict", action=argparse.BooleanOptionalAction, default=True,
                        help="require a prediction for every name of the list or tags file")
    parser.add_argument("--workers", type=int, help="decoding processes (default: the cores, "
                        "at most 8; 0 or 1 = none)")
    args = parser.parse_args(argv)
    given = {"dataset_name": args.dataset_name, "num_classes": args.num_classes}
    args.overrides += [f"{key}={value}" for key, value in given.items() if value]
    from lib.evaluation import score
    cfg = config_from_args(args)
    warn_unread("eval_mIoU", args.overrides, score.config_keys(cfg))
    score.run(cfg, res_path=args.res_path,
              gt_path=args.gt_path, list_path=args.list, strict=args.strict,
              workers=args.workers, json_path=args.json, from_file=args.cfg_file is not None)


if __name__ == "__main__":
    run_main(main)
