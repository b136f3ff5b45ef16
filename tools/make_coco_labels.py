"""Make COCO 2014's label PNGs, image lists and tags files from its instances files.

    python tools/make_coco_labels.py --dataset_root COCO [--crowd background|ignore] [--workers N]

Reads COCO/annotations/instances_{train,val}2014.json and writes COCO/SegmentationClass/NAME.png
(0 background, 1..80 the categories in increasing id, 255 crowd pixels with --crowd ignore),
COCO/ImageSets/Segmentation/{train,val}.txt and COCO/im_tags.pkl, COCO/im_tags_val.pkl.
A rerun paints only the PNGs that are missing or cut short.
"""
import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import run_main  # noqa: E402


def main(argv=None):
    from lib.coco import LIST_NAMES, TAGS_FILES
    from lib.dataset.coco_labels import CROWD_MODES, run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_root", required=True, help="COCO 2014 folder (train2014/, "
                        "val2014/, annotations/)")
    parser.add_argument("--crowd", choices=CROWD_MODES, default="background",
                        help="crowd pixels no other annotation covers: 0 (default) or 255")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: the cores, at most 8)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    counts = run(args.dataset_root, crowd=args.crowd, workers=args.workers)
    for split, c in counts.items():
        print(f"{split}: {c['images']} label PNGs ({c['written']} written, "
              f"{c['images'] - c['written']} already there), {c['listed']} images in "
              f"{LIST_NAMES[split]}.txt, {c['tagged']} in {TAGS_FILES[split]}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    run_main(main)
