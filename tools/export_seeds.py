"""Export seeds for a DSRG-style segmentation stage: an id list and, optionally, SEC/DSRG cues.

    python tools/export_seeds.py --seeds DIR --out_list FILE [--seed_prefix PREFIX]
        [--list FILE] [--cues FILE --tags FILE [--cue_size 41]]

The list has lines ``JPEGImages/NAME.jpg PREFIX/NAME.png`` (PREFIX defaults to DIR as given:
give it relative to the root the segmentation stage reads from). Without --list every seed
PNG in DIR is exported. --cues writes the localization-cue pickle (``NAME_cues``,
``NAME_labels``) of SEC/DSRG; it needs the image-level tags file.
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import run_main  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", required=True, help="folder of seed PNGs (infer_cam output)")
    parser.add_argument("--out_list", required=True, help="id list file to write")
    parser.add_argument("--seed_prefix", help="seed folder as written in the list "
                        "(default: --seeds as given)")
    parser.add_argument("--list", help="export only the names in this file (one per line; "
                        "'JPEGImages/NAME.jpg ...' lines are reduced to NAME)")
    parser.add_argument("--cues", help="also write the SEC/DSRG localization-cue pickle here")
    parser.add_argument("--tags", help="image-level tags file (im_tags.pkl or .json), "
                        "needed with --cues")
    parser.add_argument("--cue_size", type=int,
                        help="side of the cue grid (default 41, SEC/DSRG's)")
    return parser


def main(argv=None):
    from lib.files import read_names
    from lib.seeds.export import export_seeds

    args = build_parser().parse_args(argv)
    if args.cues and not args.tags:
        from lib.errors import UserError

        raise UserError("--cues needs --tags FILE: the image-level tags file (im_tags.pkl or "
                        "a .json) that gives each image's classes")
    names = export_seeds(args.seeds, args.out_list, seed_prefix=args.seed_prefix,
                         names=read_names(args.list) if args.list else None,
                         cues_path=args.cues, tags_path=args.tags, cue_size=args.cue_size)
    print(f"wrote {len(names)} lines to {args.out_list}")
    if args.cues:
        print(f"wrote the cues of {len(names)} images to {args.cues}")
    return 0


if __name__ == "__main__":
    run_main(main)
