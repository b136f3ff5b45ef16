"""PASCAL VOC constants: class names, the colour palette, and the special label values."""
import numpy as np

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
UNLABELED = 21  # a seed pixel that carries no label
IGNORE = 255    # a ground-truth pixel that is not scored (object borders)


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
