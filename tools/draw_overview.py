"""Draw the SGAN method overview:
``python tools/draw_overview.py [--out images/sgan_overview.png]``."""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import run_main  # noqa: E402


def main(argv=None):
    from lib.pictures.overview import draw_overview

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="images/sgan_overview.png", help="PNG file to write")
    args = parser.parse_args(argv)
    draw_overview(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_main(main)
