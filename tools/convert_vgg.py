"""ImageNet VGG16 to our caffe layout: ``python tools/convert_vgg.py IN.pth OUT.pth``.

IN is a VGG16 checkpoint in torchvision's layout (``features.0.weight`` ..., e.g. torchvision's
``vgg16-397923af.pth``) or already in caffe layout (``conv1_1.weight`` ...). OUT holds the 26
conv tensors the backbone loads (config key ``pretrain``).
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import run_main  # noqa: E402


def main(argv=None):
    from lib.network.convert_vgg import run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("in_path", metavar="IN.pth",
                        help="VGG16 weights (torchvision or caffe layout)")
    parser.add_argument("out_path", metavar="OUT.pth",
                        help="where to write the caffe-layout weights")
    args = parser.parse_args(argv)
    layout = run(args.in_path, args.out_path)
    print(f"wrote {args.out_path} (26 conv tensors, caffe layout) from {args.in_path} "
          f"({layout} layout)")
    return 0


if __name__ == "__main__":
    run_main(main)
