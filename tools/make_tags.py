"""Write the image-level tags file (im_tags.pkl and im_tags.json) from masks or XML annotations.

    python tools/make_tags.py --masks VOC2012/SegmentationClassAug --out VOC2012/im_tags.pkl
        [--list VOC2012/ImageSets/Segmentation/train_aug.txt]
    python tools/make_tags.py --xml VOC2012/Annotations --out tags.pkl [--list FILE]

Masks give the published tags (unique labels minus 0 and 255); without --list every PNG
(or XML file) in the folder is used. Images without a foreground class are skipped.
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import add_dataset_name, run_main  # noqa: E402
from lib.errors import first_few  # noqa: E402


def main(argv=None):
    from lib.dataset.make_tags import json_path, run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--masks", help="folder of label-index PNGs (SegmentationClassAug)")
    source.add_argument("--xml", help="folder of VOC XML annotations (Annotations)")
    parser.add_argument("--out", required=True,
                        help="output .pkl file (a .json twin is written beside it)")
    parser.add_argument("--list", help="only the names in this file (one per line; "
                        "'JPEGImages/NAME.jpg ...' lines are reduced to NAME)")
    add_dataset_name(parser)
    args = parser.parse_args(argv)
    folder, kind = (args.masks, "masks") if args.masks else (args.xml, "xml")
    tags, skipped = run(folder, args.out, kind, args.list, args.dataset_name)
    if skipped:
        print(f"warning: skipped {len(skipped)} images with no foreground class "
              f"({first_few(skipped)})",
              file=sys.stderr)
    print(f"wrote tags of {len(tags)} images from {kind} in {folder} to {args.out} and "
          f"{json_path(args.out)}")
    return 0


if __name__ == "__main__":
    run_main(main)
