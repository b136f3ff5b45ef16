"""Stage-3 inference: labels of a split by the trained segmentation network (recipe 11.5), one
stage of the inference skeleton (lib.inference).

Per batch of ``test_batch_size`` images: each image zoomed to the three test scales,
normalised as the backbone's weights expect (lib.normalisation), one forward per
scale for the batch on the device, each image's logits zoomed back and summed there
(lib.stage3.predict), then, per image, in worker processes, softmax with the 1e-5 floor, the
full-size dense CRF (``seg_crf``), the argmax (restricted to the tags with
``restrict_to_tags``) and a palette PNG ``<res_path>/<cfg_name>_<split>/NAME.png`` in the
dataset's colours (labels 0..C, C + 1 classes: VOC 21, COCO 81). Several
processes (torchrun or ``num_processes``) each take every world_size-th image; the folder
records what made it and a rerun continues where it stopped (lib.records).
"""
import functools
import os
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from lib.config import ConfigError
from lib.dataset.check import check_files
from lib.dataset.description import VOC12, describe
from lib.dataset.tags import load_tags
from lib.errors import UserError, first_few
from lib.files import read_names, remove_files
from lib.image import is_complete_file, read_image, write_palette_png
from lib.inference import InferencePlan, InferenceStage, run_inference
from lib.network.deeplab import deeplab_from_config
from lib.normalisation import PUBLISHED_TEST_INPUT, check_input_scale, inference_normalisation
from lib.paths import dataset_path, segmentation_dir, split_list_path
from lib.stage3.predict import batch_scores, labels_from_probabilities, probabilities
from lib.training.run_folder import load_trained_network


# The config keys this step reads: one given on the command line that is not among them
# changes nothing here (lib.cli says so).
CONFIG_KEYS = frozenset({
    "amp", "cfg_name", "channels_last", "checkpoint", "crf_workers", "cue_file", "dataset_name",
    "dataset_root", "device", "init", "max_iter", "mean", "num_processes", "num_worker",
    "overwrite", "res_path", "restrict_to_tags", "save_model_path", "seg_backbone", "seg_crf",
    "seg_pretrain", "split", "std", "test_batch_size", "test_scales", "width_mult",
})

# Config keys that change the labels (the folder's record, with the weights' identity).
PREDICTION_KEYS = ("dataset_root", "split", "seg_backbone", "width_mult", "mean", "std",
                   "test_scales", "seg_crf", "restrict_to_tags", "amp")
# The keys that choose the network (dataset_name: its class count): with its input's (mean,
# std), taken from the checkpoint's run (lib.training.run_folder.load_trained_network).
NETWORK_KEYS = ("seg_backbone", "width_mult", "dataset_name")


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
    tags = load_tags(dataset_path(cfg, cfg.cue_file), describe(cfg))
    untagged = [n for n in names if n not in tags]
    if untagged:
        raise UserError(f"restrict_to_tags: {len(untagged)} images of split '{cfg.split}' have "
                        f"no tags in {dataset_path(cfg, cfg.cue_file)}: {first_few(untagged)}")
    return {n: tags[n] for n in names}


@dataclass(frozen=True)
class LabelJob:
    """One image after the network: its file, tags or None, where its labels go; its summed
    scores (C + 1 x H x W) travel beside it, through shared memory (lib.workers.WorkerQueue)."""

    name: str
    image_path: str
    tags: np.ndarray
    out_path: str


def write_labels(crf, palette, job, scores):
    """Softmax, CRF (if ``crf``: on the image, read again here rather than sent along),
    argmax and the PNG of one image in the colours of ``palette`` (a worker's job)."""
    image_rgb = read_image(job.image_path)[:, :, ::-1] if crf else None
    labels = labels_from_probabilities(probabilities(scores), image_rgb, crf=crf, tags=job.tags)
    write_palette_png(job.out_path, labels, palette)


class Images(Dataset):
    """RGB uint8 images by name, decoded in loader workers, with their tags (``tags``:
    {name: classes} for restrict_to_tags, else None), where ``dataset`` keeps them. Items are
    dicts; batches, lists of them (:func:`as_list`): the images differ in size."""

    def __init__(self, root, names, tags=None, dataset=VOC12):
        self.root, self.names, self.tags, self.dataset = root, names, tags, dataset

    def path(self, name):
        return self.dataset.image_path(self.root, name)

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        name, path = self.names[index], self.path(self.names[index])
        return {"name": name, "image": np.ascontiguousarray(read_image(path)[:, :, ::-1]),
                "path": path, "tags": None if self.tags is None else self.tags[name]}


def label_path(folder, name):
    """Where the labels of image ``name`` go in ``folder``."""
    return os.path.join(folder, name + ".png")


def as_list(items):
    """The loader's batch of :class:`Images` items: the list itself."""
    return items


def label_jobs(forward, batch, scales, device, out_path, normalisation=PUBLISHED_TEST_INPUT):
    """(LabelJob, (scores,)) of each image of a batch of :class:`Images` items: its
    multi-scale scores, one ``forward`` per scale for the whole batch (the input normalised by
    ``normalisation``, zooms on ``device``); ``out_path(name)``: the PNG to write."""
    scores = batch_scores(forward, [item["image"] for item in batch], scales, device,
                          normalisation)
    return [(LabelJob(item["name"], item["path"], item["tags"], out_path(item["name"])),
             (item_scores,)) for item, item_scores in zip(batch, scores)]


def run(cfg):
    """Write the labels of every image of the split; return the output folder."""
    run_inference(cfg, LabelInference())
    return segmentation_dir(cfg)


class LabelInference(InferenceStage):
    """The labels of the split's images by the trained segmentation network."""

    name = "infer_seg"

    def plan(self, cfg):
        trained = load_trained_network(cfg, NETWORK_KEYS, deeplab_from_config)
        cfg = trained.cfg  # with the run's dataset_name, its tags' classes
        names = split_names(cfg)
        tags = image_tags(cfg, names)
        check_input_scale(cfg)  # before anything is written
        dataset = describe(cfg)
        images = Images(cfg.dataset_root, names, tags, dataset)
        check_files(names, images.path, {})
        folder = segmentation_dir(cfg)
        out_path = functools.partial(label_path, folder)

        return InferencePlan(
            trained=trained, dataset=images, folder=folder,
            record={key: cfg[key] for key in PREDICTION_KEYS},
            retry_hint="or write elsewhere with another cfg_name or res_path",
            describe=lambda count: f"labels of {count} images of split '{cfg.split}'",
            write=functools.partial(write_labels, cfg.seg_crf, dataset.palette),
            done=lambda name: is_complete_file(out_path(name)),
            remove=functools.partial(remove_files, folder),
            folders=[folder], crf=cfg.seg_crf, collate=as_list)

    def jobs(self, plan, batch, on):
        cfg, model = plan.trained.cfg, plan.trained.model

        def forward(images):
            with on.autocast():
                return model(images.contiguous(memory_format=on.memory_format)).float()

        return label_jobs(forward, batch, cfg.test_scales, on.device,
                          functools.partial(label_path, plan.folder), inference_normalisation(cfg))
