"""Train SGAN (recipe 4):
``python tools/stage2/train_sgan.py --cfg_file CFG [key=value ...]``"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from lib.cli import run_step  # noqa: E402

if __name__ == "__main__":
    run_step("lib.stage2.train_sgan", __doc__)
