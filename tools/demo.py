"""The end-to-end demo on synthetic VOC-format data (``make demo``): stage 1's classifier on the
tags, its initial seeds and backbone; SGAN's seeds; the segmentation network trained on the
initial seeds and on SGAN's seeds, scored on held-out images.

    python tools/demo.py --cfg_file config/demo.yml [key=value ...]
        [--cls_cfg_file config/demo_cls.yml] [--cls_set key=value ...]
        [--seg_cfg_file config/demo_seg.yml] [--seg_set key=value ...] [--num_images N]

key=value overrides apply to the SGAN config; --cls_set (repeatable) to the stage-1 config,
--seg_set to the stage-3 config.
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
    parser.add_argument("--cls_cfg_file", default="config/demo_cls.yml",
                        help="the stage-1 config (default config/demo_cls.yml)")
    parser.add_argument("--cls_set", action="append", default=[], metavar="key=value",
                        help="an override of the stage-1 config (repeatable)")
    parser.add_argument("--seg_cfg_file", default="config/demo_seg.yml",
                        help="the stage-3 config (default config/demo_seg.yml)")
    parser.add_argument("--seg_set", action="append", default=[], metavar="key=value",
                        help="an override of the stage-3 config (repeatable)")
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
                        help="where to draw the segmentation networks' training curves ('' for "
                             "none)")
    args = parser.parse_intermixed_args(argv)  # key=value before or after --seg_set
    demo.run(load_config(args.cls_cfg_file, args.cls_set), config_from_args(args),
             load_config(args.seg_cfg_file, args.seg_set), num_images=args.num_images,
             min_size=args.min_size, max_size=args.max_size, data_seed=args.data_seed,
             seed_figure=args.seed_figure or None,
             segmentation_figure=args.segmentation_figure or None,
             curves_figure=args.curves_figure or None)


if __name__ == "__main__":
    run_main(main)
