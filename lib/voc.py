"""PASCAL VOC constants and this repository's label conventions, defined once.

Label values: 0 background, 1..20 the VOC classes (``VOC_CLASSES``), 21 "unlabeled" in seed
masks, 255 "ignore" in ground truth. At feature size the seed branch of SGAN uses classes
0..19 (class c -> c - 1) with 20 as its ignore index.
"""
import os

import numpy as np

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
NUM_FG_CLASSES = 20   # foreground classes 1..20: the image-level tags, CAM channels
NUM_CLASSES = 21      # background + 20: segmentation (recipe 7 segmentation mode, stage 3)
SEED_CLASSES = 22     # background + 20 + unlabeled: seed masks (recipe 7 seed mode)
UNLABELED = 21        # a seed pixel that carries no label
IGNORE = 255          # a ground-truth pixel that is not scored (object borders)
SEED_IGNORE = 20      # the seed branch's ignore index at feature size (recipe 2 step 7)
BGR_MEAN = (104.008, 116.669, 122.675)  # caffe-layout input mean (recipe 2 step 3)
SAL_THRESH = 0.06     # saliency / 255 above this is salient: the attention mask (recipe 2 step 6)
BG_THRESH = 0.06      # saliency / 255 below this is background in seeds (recipe 5 step 2)
SEGMENTATION_GT = "SegmentationClass/"  # ground truth of segmentation results (recipe 7)
SEED_GT = "SegmentationClassAug/"  # ground truth of seeds: gt_path's default (recipe 1, 10)


def image_path(root, name):
    """``root/JPEGImages/NAME.jpg``: where VOC keeps image NAME."""
    return os.path.join(root, "JPEGImages", name + ".jpg")


def _voc_palette():
    """The PASCAL VOC colour map: bits of the label index interleaved into R, G and B."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, rgb = index, [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << (7 - bit)
            value >>= 3
        palette[index] = rgb
    palette.setflags(write=False)
    return palette


VOC_PALETTE = _voc_palette()  # (256, 3) uint8 RGB
