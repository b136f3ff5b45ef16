"""Stage-3 inference: labels of a split by the trained segmentation network (SPEC 11.5).

Per image: the three test scales, normalised as the backbone's weights expect
(lib.stage3.normalisation), through the network on the device, zoomed back and summed
there (lib.stage3.predict), then, in worker processes, softmax with the 1e-5 floor, the
full-size dense CRF (``seg_crf``), the argmax (restricted to the tags with
``restrict_to_tags``) and a palette PNG ``<res_path>/<cfg_name>_<split>/NAME.png``. Several
processes (torchrun or ``num_processes``) each take every world_size-th image; the folder
records what made it and a rerun continues where it stopped (lib.records).
"""
import functools
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from lib.config import ConfigError
from lib.crf.workers import crf_workers
from lib.dataset.check import check_files
from lib.dataset.tags import load_tags
from lib.errors import UserError, first_few
from lib.files import read_names
from lib.image import is_complete_file, read_image, write_palette_png
from lib.network.deeplab import deeplab_from_config
from lib.paths import dataset_path, segmentation_dir, split_list_path
from lib.records import names_to_write, outputs_summary, prepare_output_folder, weights_identity
from lib.stage3.normalisation import inference_normalisation
from lib.stage3.predict import (
    PUBLISHED_TEST_INPUT,
    labels_from_probabilities,
    multi_scale_scores,
    probabilities,
)
from lib.training.distributed import all_reduce_sum, barrier, launch
from lib.training.run_folder import load_trained_network
from lib.training.runtime import amp_dtype, autocast, loader_workers, process_logger
from lib.workers import WorkerQueue

# Config keys that change the labels (the folder's record, with the weights' identity).
PREDICTION_KEYS = ("dataset_root", "split", "seg_backbone", "width_mult", "mean", "std",
                   "test_scales", "seg_crf", "restrict_to_tags", "amp")
NETWORK_KEYS = ("seg_backbone", "width_mult")  # the keys that choose the network (a run records them)


def split_names(cfg):
    """The names of ``split`` (one-line errors name the key and the file)."""
    path = split_list_path(cfg)
    if not os.path.isfile(path):
        raise ConfigError(f"config key 'split': list file not found: {path}")
    return sorted(set(read_names(path)))


def image_tags(cfg, names):
    """{name: classes} for ``restrict_to_tags`` (else None); every name must have tags."""
    if not cfg.restrict_to_tags:
        return None
    tags = load_tags(dataset_path(cfg, cfg.cue_file))
    untagged = [n for n in names if n not in tags]
    if untagged:
        raise UserError(f"restrict_to_tags: {len(untagged)} images of split '{cfg.split}' have "
                        f"no tags in {dataset_path(cfg, cfg.cue_file)}: {first_few(untagged)}")
    return {n: tags[n] for n in names}


@dataclass(frozen=True)
class LabelJob:
    """One image after the network: summed scores (21 x H x W), its file, tags or None."""

    name: str
    scores: np.ndarray
    image_path: str
    tags: np.ndarray
    out_path: str


def write_labels(crf, job):
    """Softmax, CRF (if ``crf``), argmax and the palette PNG of one image (a worker's job)."""
    image_rgb = read_image(job.image_path)[:, :, ::-1]
    labels = labels_from_probabilities(probabilities(job.scores), image_rgb, crf=crf,
                                       tags=job.tags)
    write_palette_png(job.out_path, labels)


class Images(Dataset):
    """RGB uint8 images by name, decoded in loader workers."""

    def __init__(self, root, names):
        self.root, self.names = root, names

    def path(self, name):
        return os.path.join(self.root, "JPEGImages", name + ".jpg")

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        name = self.names[index]
        return name, np.ascontiguousarray(read_image(self.path(name))[:, :, ::-1])


def run(cfg):
    """Write the labels of every image of the split; return the output folder."""
    launch(_infer, cfg)
    return segmentation_dir(cfg)


def _infer(ctx, cfg):
    names = split_names(cfg)
    tags = image_tags(cfg, names)
    trained = load_trained_network(cfg, NETWORK_KEYS, deeplab_from_config)
    model, weights, cfg = trained.model, trained.weights, trained.cfg  # before writing anything
    normalisation = inference_normalisation(cfg)
    images = Images(cfg.dataset_root, names)
    check_files(names, images.path, {})
    folder = segmentation_dir(cfg)
    record = {**{key: cfg[key] for key in PREDICTION_KEYS}, "weights": weights_identity(weights)}

    def out_path(name):
        return os.path.join(folder, name + ".png")

    prepare_output_folder(ctx, folder, record, cfg.overwrite,
                          "or write elsewhere with another cfg_name or res_path",
                          lambda: [os.unlink(out_path(n)) for n in names
                                   if os.path.exists(out_path(n))])
    images.names = names_to_write(names, ctx, lambda n: is_complete_file(out_path(n)),
                                  cfg.overwrite)
    todo = int(all_reduce_sum(torch.tensor([len(images.names)]), ctx))
    logger = process_logger("sgan.infer_seg", folder.rstrip("/") + ".log", ctx.is_main)
    if trained.adopted:
        logger.info("the network as its run trained it: %s", ", ".join(trained.adopted))
    logger.info("labels of %d images of split '%s' on %d x %s from %s into %s; %d already there",
                todo, cfg.split, ctx.world_size, ctx.device, weights, folder, len(names) - todo)
    device, dtype = ctx.device, amp_dtype(cfg.amp, ctx.device)
    memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format

    def forward(batch):
        with autocast(dtype, device):
            return model(batch.contiguous(memory_format=memory_format)).float()

    workers = crf_workers(cfg, ctx, logger, pipelined=True) if cfg.seg_crf and images.names else 0
    started = time.monotonic()
    with WorkerQueue(functools.partial(write_labels, cfg.seg_crf), workers) as writer, \
            torch.no_grad():
        model.to(device, memory_format=memory_format).eval()  # after the workers forked
        submit_images(forward, images, writer, cfg.test_scales, device, out_path, normalisation,
                      tags, loader_workers(cfg, ctx, logger), progress=ctx.is_main)
    barrier(ctx)
    logger.info("%s", outputs_summary(todo, len(names) - todo, 0, time.monotonic() - started,
                                      [folder]))


def submit_images(forward, images, writer, scales, device, out_path,
                  normalisation=PUBLISHED_TEST_INPUT, tags=None, workers=0, progress=False):
    """The network's part of every image of ``images`` (an Images, decoded by ``workers``
    loader processes): the multi-scale scores of the input normalised by ``normalisation``,
    zoomed on ``device``; the rest goes to ``writer`` (a WorkerQueue of :func:`write_labels`)
    as a LabelJob. ``tags``: {name: classes} or None; ``out_path(name)``: the PNG to write."""
    loader = DataLoader(images, batch_size=None, num_workers=workers)
    for name, image_rgb in tqdm(loader, desc="infer_seg", dynamic_ncols=True,
                                disable=not progress):
        scores = multi_scale_scores(forward, image_rgb.numpy(), scales, device, exact=False,
                                    normalisation=normalisation)
        writer.submit(LabelJob(name, scores, images.path(name),
                               None if tags is None else tags[name], out_path(name)))
