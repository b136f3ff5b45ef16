"""The end-to-end demo on synthetic VOC-format data (``make demo``): stage 1's classifier on the
tags, its seeds and backbone; SGAN's seeds; the segmentation network trained on each kind of
seeds, scored on held-out images. key=value overrides apply to the SGAN config (--cfg_file);
--cls_set key=value and --seg_set key=value (repeatable) to the stage-1 and stage-3 configs.
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import config_from_args, config_parser, run_main  # noqa: E402


def main(argv=None):
    from lib.config import load_config
    from lib.tooling import demo

    parser = config_parser(__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for stage, name in (("cls", "stage-1"), ("seg", "stage-3")):
        parser.add_argument(f"--{stage}_cfg_file", default=f"config/demo_{stage}.yml",
                            help=f"the {name} config (default config/demo_{stage}.yml)")
        parser.add_argument(f"--{stage}_set", action="append", default=[], metavar="key=value",
                            help=f"an override of the {name} config (repeatable)")
    parser.add_argument("--num_images", type=int, default=200,
                        help="synthetic images to generate if dataset_root has none")
    parser.add_argument("--min_size", type=int, default=64, help="smallest image side")
    parser.add_argument("--max_size", type=int, default=128, help="largest image side")
    parser.add_argument("--data_seed", type=int, default=0, help="generator random seed")
    parser.add_argument("--seed_figure", default="images/demo_seeds.png",
                        help="where to draw the seed figure ('' for none)")
    parser.add_argument("--segmentation_figure", default="images/demo_segmentation.png",
                        help="where to draw the segmentation figure ('' for none)")
    parser.add_argument("--curves_figure", default="images/demo_curves.png",
                        help="where to draw the networks' training curves ('' for none)")
    args = parser.parse_args(argv)
    demo.run(load_config(args.cls_cfg_file, args.cls_set), config_from_args(args),
             load_config(args.seg_cfg_file, args.seg_set), num_images=args.num_images,
             min_size=args.min_size, max_size=args.max_size, data_seed=args.data_seed,
             seed_figure=args.seed_figure or None,
             segmentation_figure=args.segmentation_figure or None,
             curves_figure=args.curves_figure or None)


if __name__ == "__main__":
    run_main(main)
