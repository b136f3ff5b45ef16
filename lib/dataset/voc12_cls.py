"""VOC2012 images and tags only: the stage-1 classifier's training set.

Stage 1 runs before any seeds exist and needs no saliency, so this set reads neither; its
image preprocessing and flips are those of VOC12ClsSalDataset (SPEC section 2, steps 1-5).
"""
import math
import os

import numpy as np
import torch
from torch.utils.data import Dataset

from lib.dataset.tags import load_tags
from lib.dataset.voc12_sgan import BGR_MEAN, multi_hot, normalise_image, read_image, zoom_to


class VOC12ClsDataset(Dataset):
    """Training samples: dicts of name, image (float32 3 x S x S), label (float32 20), size.

    Names are the sorted keys of the tags file; with ``max_iters`` the list is repeated to
    cover at least that many samples. Flips are drawn from ``(flip_seed, index)`` exactly as
    in VOC12ClsSalDataset, so both sets flip the same samples.
    """

    def __init__(self, voc12_root, cue_file, max_iters=None, new_size=321, mirror=True,
                 mean=BGR_MEAN, std=None, flip_seed=7):
        self.root = voc12_root
        self.tags = load_tags(os.path.join(voc12_root, cue_file))
        self.names = sorted(self.tags)
        self.new_size = new_size
        self.mean, self.std = mean, std
        self.mirror = mirror
        self.flip_seed = flip_seed
        self.samples = self.names
        if max_iters:
            self.samples = self.names * math.ceil(max_iters / len(self.names))

    def image_path(self, name):
        return os.path.join(self.root, "JPEGImages", name + ".jpg")

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        name = self.samples[index]
        image = read_image(self.image_path(name))
        size = image.shape[:2]
        image = normalise_image(zoom_to(image, (self.new_size, self.new_size), 1),
                                self.mean, self.std)
        if self.mirror and np.random.default_rng((self.flip_seed, index)).random() < 0.5:
            image = image[:, :, ::-1]
        return {
            "name": name,
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "label": torch.from_numpy(multi_hot(self.tags[name])),
            "size": torch.tensor(size, dtype=torch.int64),
        }
