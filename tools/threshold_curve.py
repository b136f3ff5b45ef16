"""Seed quality against cam_thresh from saved class maps, without the network: a table of
precision, recall and mIoU per threshold, and a precision-recall plot.

    python tools/threshold_curve.py [--maps DIR | --res_path DIR | --cfg_file CFG [key=value ...]]
        [--thresholds 0.05:0.95:0.05] [--curve_plot FILE] [--json FILE] [--gt_path DIR]

The class maps are those infer_cam writes with save_class_maps=true (default folder: the
results folder + "_maps"); the ground truth is the config's dataset_root/gt_path, the classes
its dataset_name's.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import config_from_args, config_parser, run_main, warn_unread  # noqa: E402

DEFAULT_THRESHOLDS = "0.05:0.95:0.05"


def main(argv=None):
    parser = config_parser(__doc__.split("\n\n")[0], cfg_required=False)
    parser.add_argument("--maps", help="class-map folder (default: the results folder + _maps)")
    parser.add_argument("--res_path", help="seed folder whose _maps folder to read")
    parser.add_argument("--gt_path", help="ground-truth folder (default: the config's gt_path)")
    parser.add_argument("--num_classes", type=int, help="must be the seeds' C + 2 (VOC 22); "
                        "accepted for eval_mIoU.py's command lines")
    parser.add_argument("--thresholds", nargs="+", default=[DEFAULT_THRESHOLDS], metavar="T",
                        help=f"start:stop:step (stop included) and/or numbers (default "
                             f"{DEFAULT_THRESHOLDS})")
    parser.add_argument("--curve_plot", help="write the precision-recall plot to this PNG")
    parser.add_argument("--json", help="also write the curve to this JSON file")
    parser.add_argument("--list", help="only the names in this file")
    parser.add_argument("--workers", type=int, help="processes (default: the cores, at most 8)")
    args = parser.parse_args(argv)
    from lib.evaluation import curve
    cfg = config_from_args(args)
    warn_unread("threshold_curve", args.overrides, curve.CONFIG_KEYS)
    curve.run(cfg, args.thresholds, maps=args.maps, res_path=args.res_path,
              gt_path=args.gt_path, num_classes=args.num_classes, list_path=args.list,
              workers=args.workers, json_path=args.json, plot_path=args.curve_plot,
              from_file=args.cfg_file is not None)


if __name__ == "__main__":
    run_main(main)
