"""Infer seeds with a trained SGAN (recipe sections 5 and 6):
``python tools/stage2/infer_cam.py --cfg_file CFG [key=value ...]``"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from lib.cli import run_step  # noqa: E402

if __name__ == "__main__":
    run_step("lib.stage2.infer_cam", __doc__)
