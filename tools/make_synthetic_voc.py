"""Write a small synthetic VOC2012-format dataset (images, saliency, seeds, ground truth, tags).

Every 5th image is held out (ImageSets/Segmentation/val.txt): the tags (im_tags.pkl), the
training lists (train.txt, train_aug.txt) and the initial seeds cover the other images only.

Example: python tools/make_synthetic_voc.py --root data/synth --num_images 40
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import generator_main, run_main  # noqa: E402


def main(argv=None):
    from lib.dataset.description import VOC12
    from lib.tooling.synthetic import generate_dataset

    return generator_main(__doc__.split("\n\n")[0], generate_dataset, "VOC-format",
                          VOC12.num_fg_classes, argv)


if __name__ == "__main__":
    run_main(main)
