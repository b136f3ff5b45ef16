"""The end-to-end demo on synthetic VOC-format data (``make demo``): SGAN's seeds, then the
segmentation network trained on the initial seeds and on SGAN's seeds, scored on held-out images.

    python tools/demo.py --cfg_file config/demo.yml [key=value ...]
        [--seg_cfg_file config/demo_seg.yml] [--seg_set key=value ...] [--num_images N]

key=value overrides apply to the SGAN config; --seg_set (repeatable) to the stage-3 config.
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
    args = parser.parse_intermixed_args(argv)  # key=value before or after --seg_set
    demo.run(config_from_args(args), load_config(args.seg_cfg_file, args.seg_set),
             num_images=args.num_images, min_size=args.min_size, max_size=args.max_size,
             data_seed=args.data_seed, seed_figure=args.seed_figure or None,
             segmentation_figure=args.segmentation_figure or None)


if __name__ == "__main__":
    run_main(main)
