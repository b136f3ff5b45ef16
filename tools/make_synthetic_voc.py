"""Write a small synthetic VOC2012-format dataset (images, saliency, seeds, ground truth, tags).

Every 5th image is held out (ImageSets/Segmentation/val.txt): the tags (im_tags.pkl), the
training lists (train.txt, train_aug.txt) and the initial seeds cover the other images only.

Example: python tools/make_synthetic_voc.py --root data/synth --num_images 40
"""
import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import parse_classes, run_main  # noqa: E402
from lib.errors import UserError  # noqa: E402


def main(argv=None):
    from lib.tooling.synthetic import generate_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="output folder (the dataset_root)")
    parser.add_argument("--num_images", type=int, default=40)
    parser.add_argument("--min_size", type=int, default=64, help="smallest image side, pixels")
    parser.add_argument("--max_size", type=int, default=128, help="largest image side, pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--classes", default=None, help="comma list of class ids in 1..20 (default all)")
    parser.add_argument("--sal_subdir", default="sal_snet")
    parser.add_argument("--seed_subdir", default="base_30_bg")
    args = parser.parse_args(argv)
    classes = None if args.classes is None else parse_classes(args.classes)
    start = time.perf_counter()
    try:
        names = generate_dataset(args.root, num_images=args.num_images, min_size=args.min_size,
                                 max_size=args.max_size, seed=args.seed, classes=classes,
                                 sal_subdir=args.sal_subdir, seed_subdir=args.seed_subdir)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {len(names)} synthetic images ({args.min_size}-{args.max_size} px, seed {args.seed}) "
          f"to {args.root} in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    run_main(main)
