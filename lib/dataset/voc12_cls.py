"""Images and tags only: the stage-1 classifier's training set.

Stage 1 runs before any seeds exist and needs no saliency, so this set reads neither; its
image preprocessing and flips are those of VOC12ClsSalDataset (recipe 2, steps 1-5).
"""
import numpy as np
import torch

from lib.dataset.description import VOC12
from lib.dataset.voc12_sgan import VOC12Images, is_flipped, repeat_names
from lib.normalisation import normalise_image
from lib.voc import BGR_MEAN


class VOC12ClsDataset(VOC12Images):
    """Training samples: dicts of name, image (float32 3 x S x S), label (float32 C), size.

    With ``max_iters`` the name list is repeated to cover at least that many samples. Flips
    are those of VOC12ClsSalDataset (:func:`is_flipped`), so both sets flip the same samples.
    With ``normalise`` false the image stays uint8 BGR S x S x 3, for normalise_on_device.
    """

    def __init__(self, voc12_root, cue_file, max_iters=None, new_size=321, mirror=True,
                 mean=BGR_MEAN, std=None, flip_seed=7, normalise=True, description=VOC12):
        super().__init__(voc12_root, cue_file, new_size, mean, std, description)
        self.normalise = normalise
        self.mirror = mirror
        self.flip_seed = flip_seed
        self.samples = repeat_names(self.names, max_iters)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        name = self.samples[index]
        image, size = self.resized_image(name)
        if self.normalise:
            image = normalise_image(image, self.mean, self.std)
        if self.mirror and is_flipped(self.flip_seed, index):
            image = image[:, :, ::-1] if self.normalise else image[:, ::-1]
        return {
            "name": name,
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "label": torch.from_numpy(self.label(name)),
            "size": torch.tensor(size, dtype=torch.int64),
        }
