"""Labels of a split by the trained segmentation network (recipe 11.5):
``python tools/stage3/infer_seg.py --cfg_file CFG [key=value ...]``"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from lib.cli import run_step  # noqa: E402

if __name__ == "__main__":
    run_step("lib.stage3.infer_seg", __doc__)
