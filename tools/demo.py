"""The end-to-end demo on synthetic VOC-format data (``make demo``):
``python tools/demo.py --cfg_file config/demo.yml [--num_images N] [key=value ...]``"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import config_from_args, config_parser, run_main  # noqa: E402


def main(argv=None):
    from lib.tooling import demo

    parser = config_parser(__doc__)
    parser.add_argument("--num_images", type=int, default=200,
                        help="synthetic images to generate if dataset_root has none")
    parser.add_argument("--min_size", type=int, default=64, help="smallest image side")
    parser.add_argument("--max_size", type=int, default=128, help="largest image side")
    parser.add_argument("--data_seed", type=int, default=0, help="generator random seed")
    parser.add_argument("--figure", default="images/demo_seeds.png",
                        help="where to draw the seed figure ('' for none)")
    args = parser.parse_args(argv)
    demo.run(config_from_args(args), num_images=args.num_images, min_size=args.min_size,
             max_size=args.max_size, data_seed=args.data_seed, figure=args.figure or None)


if __name__ == "__main__":
    run_main(main)
