"""Per-image outputs of seed inference, written in this process or in worker processes.

Once the network has produced an image's class maps, the rest (seeds by threshold or CRF,
the optional class-map record and picture) needs only NumPy and files, so it can run in a
pool while the network works on the next batch. Each image's outputs depend only on that
image, so the files are the same whatever the number of workers.
"""
import os
from dataclasses import dataclass, field

import numpy as np

from lib.dataset.description import VOC12, DatasetDescription
from lib.files import remove_files
from lib.image import is_complete_file, read_image, write_png
from lib.paths import beside
from lib.seeds.class_maps import SUFFIX as MAPS_SUFFIX
from lib.seeds.class_maps import class_maps_dir, save_class_maps
from lib.seeds.crf import seeds_from_crf
from lib.seeds.threshold import seed_to_image_size, seeds_from_cams


def pictures_dir(seed_dir):
    """The folder beside a seed folder that holds its pictures: ``<seed_dir>_pictures``."""
    return beside(seed_dir, "_pictures")


@dataclass(frozen=True)
class OutputSettings:
    """What to write for each image and how to make its seeds; ``dataset`` gives the classes
    of the boat/train rule and the names and colours of the pictures."""

    seed_dir: str
    seed_mode: str = "threshold"
    cam_thresh: float = 0.25
    threshold_key: str = "cam_thresh"  # the config key of cam_thresh (stage 1: fg_thresh)
    ignore_conflict: bool = False
    crf: dict = field(default_factory=dict)  # keyword arguments of lib.crf.seeds_from_crf
    save_class_maps: bool = False
    save_pictures: bool = False
    dataset: DatasetDescription = VOC12

    def seed_path(self, name):
        return os.path.join(self.seed_dir, name + ".png")

    def maps_path(self, name):
        return os.path.join(class_maps_dir(self.seed_dir), name + MAPS_SUFFIX)

    def picture_path(self, name):
        return os.path.join(pictures_dir(self.seed_dir), name + ".png")

    def record(self):
        """The settings that change the seed files, for the folder's record (lib.records)."""
        if self.seed_mode == "crf":
            return {"seed_mode": self.seed_mode, "crf": dict(self.crf)}
        return {"seed_mode": self.seed_mode, self.threshold_key: self.cam_thresh,
                "ignore_conflict": self.ignore_conflict}

    def folders(self):
        """The folders this run writes: the seeds', and those of the extras it was asked for."""
        return [self.seed_dir, *([class_maps_dir(self.seed_dir)] if self.save_class_maps else []),
                *([pictures_dir(self.seed_dir)] if self.save_pictures else [])]

    def output_paths(self, name):
        """Every file this image gets."""
        paths = [self.seed_path(name)]
        if self.save_class_maps:
            paths.append(self.maps_path(name))
        if self.save_pictures:
            paths.append(self.picture_path(name))
        return paths

    def done(self, name):
        """True if every file this image should get is there and complete (a PNG with its end
        chunk, a class-map archive with its directory): a file cut short is made again."""
        return all(is_complete_file(path) for path in self.output_paths(name))

    def remove(self):
        """Delete every file of the seeds' folder and of its extras' folders (those not asked
        for this time too: they would no longer match), for a rebuild with overwrite=true."""
        remove_files(self.seed_dir)
        remove_files(class_maps_dir(self.seed_dir), MAPS_SUFFIX)
        remove_files(pictures_dir(self.seed_dir))


@dataclass(frozen=True)
class ImageJob:
    """One image's inputs after the network: maps (C, h, w) float32, tags (1..C), bg (bool
    h x w), size (H, W) and the image file (read only where needed, by whoever runs the job)."""

    name: str
    maps: np.ndarray
    tags: np.ndarray
    bg: np.ndarray
    size: tuple
    image_path: str


def write_image_outputs(settings, job):
    """Make and write the seeds (and the requested extras) of one image; return its name."""
    image_rgb = None
    if settings.seed_mode == "crf" or settings.save_pictures:
        image_rgb = read_image(job.image_path)[:, :, ::-1].copy()
    if settings.seed_mode == "crf":
        seed = seeds_from_crf(job.maps, job.tags, image_rgb, **settings.crf)
    else:
        mask = seeds_from_cams(job.maps, job.tags, job.bg, settings.cam_thresh,
                               settings.ignore_conflict, settings.dataset.boat_train_classes)
        seed = seed_to_image_size(mask, job.size)
    write_png(settings.seed_path(job.name), seed)
    if settings.save_class_maps:
        save_class_maps(settings.maps_path(job.name), job.maps, job.tags, job.size, job.bg)
    if settings.save_pictures:
        from lib.pictures.seed_figure import seed_picture

        picture = seed_picture(image_rgb, seed, job.maps, job.tags, settings.dataset)
        write_png(settings.picture_path(job.name), picture[:, :, ::-1])
    return job.name
