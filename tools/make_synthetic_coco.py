"""Write a small synthetic COCO 2014-format dataset (images, instances files, saliency, seeds).

Example: python tools/make_synthetic_coco.py --root data/synth_coco --num_images 40
then:    python tools/make_coco_labels.py --dataset_root data/synth_coco
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import generator_main, run_main  # noqa: E402


def main(argv=None):
    from lib.dataset.description import COCO14
    from lib.tooling.synthetic_coco import generate_coco_dataset

    return generator_main(__doc__.split("\n\n")[0], generate_coco_dataset, "COCO-format",
                          COCO14.num_fg_classes, argv)


if __name__ == "__main__":
    run_main(main)
