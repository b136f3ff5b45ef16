"""Draw seeds of one or more folders next to the image and the ground truth, with a legend.

    python tools/visualize.py --dataset_root ROOT [--dataset_name coco14] --seeds DIR [DIR ...]
        [--titles T ...] (--names A B ... | --list FILE | --first N) --out figure.png

One row per image: the image, the seeds of each folder, the ground truth (the dataset's seed
ground truth, VOC's SegmentationClassAug, unless --gt_subdir says otherwise).
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import add_dataset_name, run_main  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_root", required=True, help="the dataset's folder")
    add_dataset_name(parser)
    parser.add_argument("--seeds", nargs="+", required=True, help="seed folder(s), one column each")
    parser.add_argument("--titles", nargs="+", help="column titles (default: the folder names)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--names", nargs="+", help="image names")
    which.add_argument("--list", help="a list file of names ('DIR/NAME.jpg ...' lines: NAME)")
    which.add_argument("--first", type=int, help="the first N names with seeds in every folder")
    parser.add_argument("--gt_subdir", help="ground-truth folder under dataset_root")
    parser.add_argument("--out", required=True, help="PNG file to write")
    return parser


def main(argv=None):
    from lib.dataset.description import dataset_description
    from lib.files import read_names
    from lib.pictures.seed_figure import first_names, save_seed_figure

    args = build_parser().parse_args(argv)
    names = args.names or (read_names(args.list) if args.list else
                           first_names(args.seeds, args.first))
    save_seed_figure(names, args.seeds, args.dataset_root, args.out, titles=args.titles,
                     gt_subdir=args.gt_subdir, dataset=dataset_description(args.dataset_name))
    print(f"wrote {args.out} ({len(names)} images)")
    return 0


if __name__ == "__main__":
    run_main(main)
