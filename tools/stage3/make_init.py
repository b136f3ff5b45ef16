"""Write stage 3's initial weights from torchvision's ImageNet weights (recipe 11.1, 11.6):

    python tools/stage3/make_init.py --backbone vgg16 --source VGG16_Weights.IMAGENET1K_V1 \\
        --out vgg16_deeplab_init.pth

--source is a torchvision weights name (downloaded on a machine with internet) or a local file
(vgg16-397923af.pth, resnet101-63fe2227.pth). The output is the config key seg_pretrain.
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from lib.cli import run_main  # noqa: E402

DEFAULT_SOURCES = {"vgg16": "VGG16_Weights.IMAGENET1K_V1",
                   "resnet101": "ResNet101_Weights.IMAGENET1K_V1"}


def main(argv=None):
    from lib.network.deeplab_init import make_initial_weights

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", choices=sorted(DEFAULT_SOURCES), default="vgg16")
    parser.add_argument("--source", help="torchvision weights name or local .pth "
                        "(default: the backbone's IMAGENET1K_V1 weights name)")
    parser.add_argument("--out", required=True, help="the initial weights file to write")
    args = parser.parse_args(argv)
    source = args.source or DEFAULT_SOURCES[args.backbone]
    make_initial_weights(args.backbone, source, args.out)
    print(f"wrote {args.out} ({args.backbone} DeepLab-v2 without its new layers) from {source}")
    return 0


if __name__ == "__main__":
    run_main(main)
