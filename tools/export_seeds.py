"""Export seeds for a DSRG-style segmentation stage: an id list and, optionally, SEC/DSRG cues.

    python tools/export_seeds.py --seeds DIR --out_list FILE [--seed_prefix PREFIX]
        [--dataset_name D] [--list FILE] [--cues FILE --tags FILE [--cue_size 41]]

The list has lines ``IMAGE PREFIX/NAME.png``, IMAGE where the dataset keeps the image
(``JPEGImages/NAME.jpg`` for VOC, ``train2014/NAME.jpg`` for COCO), PREFIX DIR as given unless
--seed_prefix says otherwise (relative to the root the segmentation stage reads from). Without
--list every seed PNG in DIR is exported. --cues writes the localization-cue pickle
(``NAME_cues``, ``NAME_labels``) of SEC/DSRG from the image-level tags file.
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import add_dataset_name, run_main  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", required=True, help="folder of seed PNGs (infer_cam output)")
    parser.add_argument("--out_list", required=True, help="id list file to write")
    parser.add_argument("--seed_prefix", help="seed folder as written in the list "
                        "(default: --seeds as given)")
    add_dataset_name(parser)
    parser.add_argument("--list", help="export only the names in this file (one per line)")
    parser.add_argument("--cues", help="also write the SEC/DSRG localization-cue pickle here")
    parser.add_argument("--tags", help="image-level tags file (im_tags.pkl or .json), "
                        "needed with --cues")
    parser.add_argument("--cue_size", type=int, help="side of the cue grid (default 41)")
    args = parser.parse_args(argv)
    from lib.dataset.description import dataset_description
    from lib.errors import UserError
    from lib.files import read_names
    from lib.seeds.export import export_seeds
    if args.cues and not args.tags:
        raise UserError("--cues needs --tags FILE: the image-level tags file (im_tags.pkl or "
                        "a .json) that gives each image's classes")
    names = export_seeds(args.seeds, args.out_list, seed_prefix=args.seed_prefix,
                         names=read_names(args.list) if args.list else None,
                         cues_path=args.cues, tags_path=args.tags, cue_size=args.cue_size,
                         dataset=dataset_description(args.dataset_name))
    print(f"wrote {len(names)} lines to {args.out_list}")
    if args.cues:
        print(f"wrote the cues of {len(names)} images to {args.cues}")


if __name__ == "__main__":
    run_main(main)
