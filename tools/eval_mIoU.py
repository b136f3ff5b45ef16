"""Evaluate seeds or segmentation results: mIoU, mean precision and mean recall (SPEC section 7).

    python tools/eval_mIoU.py --res_path DIR --num_classes 22 [--gt_path DIR]
        [--cfg_file CFG [key=value ...]] [--json FILE] [--list FILE] [--workers N]

Without --gt_path the ground truth is the config's dataset_root/gt_path for seeds (22
classes) and dataset_root/SegmentationClass for segmentation (21); without --res_path
the results are the config's res_path/<cfg_name><test_cfg> (the folder inference writes).
Without --list or a tags file, every prediction is scored, as the published evaluator does.
The threshold curve has its own script, tools/threshold_curve.py (``--curve`` here runs it).
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import CONFIG_HELP, config_keys_epilog, run_main  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=config_keys_epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res_path", help="folder of prediction PNGs (default: from the config)")
    parser.add_argument("--gt_path", help="folder of ground-truth PNGs "
                        "(default: the config's dataset_root/gt_path)")
    parser.add_argument("--num_classes", type=int, choices=(21, 22),
                        help="22 = seeds (class 21 unlabeled), 21 = segmentation "
                             "(default: the config's num_classes, else 22)")
    parser.add_argument("--cfg_file", help="YAML config file")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=CONFIG_HELP)
    parser.add_argument("--json", help="also write the scores to this JSON file")
    parser.add_argument("--list", help="the names to evaluate, one per line ('JPEGImages/NAME.jpg "
                        "...' lines are reduced to NAME); default: the config's tags file "
                        "with --cfg_file, else every prediction PNG (each must have ground "
                        "truth; the ground-truth files left out are counted)")
    parser.add_argument("--strict", action=argparse.BooleanOptionalAction, default=True,
                        help="require a prediction for every name of the list or tags file "
                        "(default); --no-strict evaluates the predictions there are")
    parser.add_argument("--workers", type=int, help="decoding processes (default: the cores, "
                        "at most 8; 0 or 1 = none)")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--curve" in argv:  # the former spelling of tools/threshold_curve.py
        import threshold_curve

        return threshold_curve.main([arg for arg in argv if arg != "--curve"])
    from lib.config import load_config
    from lib.evaluation import score

    args = build_parser().parse_args(argv)
    score.run(load_config(args.cfg_file, args.overrides), res_path=args.res_path,
              gt_path=args.gt_path, num_classes=args.num_classes, list_path=args.list,
              strict=args.strict, workers=args.workers, json_path=args.json,
              from_file=args.cfg_file is not None)
    return 0


if __name__ == "__main__":
    run_main(main)
