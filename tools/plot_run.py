"""Training curves of runs: loss terms, learning rate and validation mIoU against iterations.

    python tools/plot_run.py model/seg_demo_initial model/seg_demo_sgan --out curves.png

Each RUN_DIR is a training run's folder (<save_model_path>/<cfg_name>) with its metrics.csv;
several runs are overlaid, named by their folders.
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import run_main  # noqa: E402


def main(argv=None):
    from lib.pictures import run_curves

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="training run folders")
    parser.add_argument("--out", required=True, help="the PNG to write")
    args = parser.parse_args(argv)
    columns = run_curves.run(args.run_dirs, args.out)
    print(f"wrote {args.out}: {', '.join(columns)} of {len(args.run_dirs)} run(s)")
    return 0


if __name__ == "__main__":
    run_main(main)
