"""Train the stage-1 classifier (vgg_init.pth):
``python tools/stage1/train_cls.py --cfg_file CFG [key=value ...]``"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from lib.cli import run_step  # noqa: E402

if __name__ == "__main__":
    run_step("lib.stage1.train_cls", __doc__)
