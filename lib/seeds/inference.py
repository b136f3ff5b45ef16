"""Seed inference, one code path for stage 1 (make_seeds) and stage 2 (infer_cam).

The network runs in this process; each image's seeds and optional extras (class-map record,
picture) are made by lib.seeds.writer, in worker processes for the CRF so that the device keeps
working while the CPU runs CRFs. Several processes (torchrun, or ``num_processes``) each take
every world_size-th image; their outputs are disjoint files, written atomically, and a rerun
skips the images whose files exist (unless ``overwrite``). The two stages differ only in their
network (a :class:`SeedModel`) and their output settings.
"""
import functools
import time

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from lib.crf.workers import crf_workers
from lib.dataset.check import check_files
from lib.dataset.voc12_sgan import VOC12SalInferDataset
from lib.image import normalise_on_device
from lib.paths import check_dataset_paths
from lib.records import (
    names_to_write,
    outputs_summary,
    prepare_output_folder,
    weights_identity,
)
from lib.seeds.writer import ImageJob, write_image_outputs
from lib.training.distributed import all_reduce_sum, barrier, launch
from lib.training.run_folder import load_trained_network
from lib.training.runtime import amp_dtype, autocast, loader_workers, process_logger
from lib.workers import WorkerQueue

# Config keys that change any stage's class maps, hence its seeds (the folder's record).
CLASS_MAP_KEYS = ("dataset_root", "cue_file", "backbone", "conv5_dilation", "width_mult",
                  "resize", "mean", "std", "sal_subdir", "sal_thresh", "sdnet_path", "bg_thresh",
                  "amp")


class SeedModel:
    """What differs between the stages: the network, its weights and its class maps."""

    name = "seeds"
    attends_to_saliency = True  # reads the attention mask of sal_subdir (SPEC 2 step 6)
    record_keys = CLASS_MAP_KEYS  # config keys that change this network's class maps
    network_keys = ()  # config keys that choose the network: a checkpoint's run has its own
    retry_hint = "or write elsewhere"  # how to choose another output folder

    def network(self, cfg):
        """The network the configuration describes (weights not yet loaded)."""
        raise NotImplementedError

    def build(self, cfg):
        """The network of the chosen checkpoint, loaded (lib.training.run_folder's
        TrainedNetwork); raise before anything is written."""
        return load_trained_network(cfg, self.network_keys, self.network)

    def class_maps(self, model, image, sal, cfg):
        """float32 (batch, 20, h, w) class maps M of normalised images and saliency masks."""
        raise NotImplementedError


def inference_dataset(cfg, attends_to_saliency=True, names=None, normalise=False):
    """The images of the tags file (or ``names``) as SPEC 5 reads them at inference: input
    side ``resize``, attention mask from ``sal_subdir`` with ``sal_thresh``, background from
    ``sdnet_path`` with ``bg_thresh`` (``new_size`` is read by nothing, as published).
    A network without attention reads ``sdnet_path`` only. Images stay uint8 unless
    ``normalise`` (the loop normalises them on the device)."""
    return VOC12SalInferDataset(
        cfg.dataset_root, cfg.cue_file, new_size=cfg.resize, mean=cfg.mean, std=cfg.std,
        sal_subdir=cfg.sal_subdir if attends_to_saliency else cfg.sdnet_path,
        sal_thresh=cfg.sal_thresh, names=names, normalise=normalise,
        bg_subdir=cfg.sdnet_path, bg_thresh=cfg.bg_thresh)


def tags_of(label):
    """Classes 1..20 of a multi-hot label (20,)."""
    return np.flatnonzero(np.asarray(label)) + 1


def infer_seeds(cfg, seed_model, settings, log_file):
    """Write the seeds ``settings`` describes for every image of the tags file, on every
    process of the job (lib.training.distributed.launch); log to ``log_file``."""
    launch(_Inference(seed_model, settings, log_file), cfg)


class _Inference:
    """A picklable ``worker(ctx, cfg)`` for :func:`lib.training.distributed.launch`."""

    def __init__(self, seed_model, settings, log_file):
        self.seed_model, self.settings, self.log_file = seed_model, settings, log_file

    def __call__(self, ctx, cfg):
        _infer(ctx, cfg, self.seed_model, self.settings, self.log_file)


def _infer(ctx, cfg, seed_model, settings, log_file):
    check_dataset_paths(cfg, "cue_file")
    device = ctx.device
    trained = seed_model.build(cfg)  # check the inputs before writing anything
    model, weights, cfg = trained.model, trained.weights, trained.cfg
    dataset = inference_dataset(cfg, seed_model.attends_to_saliency)
    check_files(dataset.names, dataset.image_path, dataset.map_paths())
    out_dir = settings.seed_dir
    record = {**{key: cfg[key] for key in seed_model.record_keys}, **settings.record(),
              "weights": weights_identity(weights)}
    prepare_output_folder(ctx, out_dir, record, cfg.overwrite, seed_model.retry_hint,
                          lambda: [settings.remove(name) for name in dataset.names])
    logger = process_logger(f"sgan.{seed_model.name}", log_file, ctx.is_main)
    if trained.adopted:
        logger.info("the network as its run trained it: %s", ", ".join(trained.adopted))
    total = len(dataset)
    dataset.names = names_to_write(dataset.names, ctx, settings.done, cfg.overwrite)
    todo = int(all_reduce_sum(torch.tensor([len(dataset.names)]), ctx))
    dtype = amp_dtype(cfg.amp, device)
    memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
    crf_in_workers = settings.seed_mode == "crf" and dataset.names
    workers = crf_workers(cfg, ctx, logger, pipelined=True) if crf_in_workers else 0
    logger.info("%s seeds for %d images on %d x %s from %s into %s; %d already there%s",
                settings.seed_mode, todo, ctx.world_size, device, weights, out_dir, total - todo,
                "" if cfg.overwrite else " (overwrite=true to redo them)")
    loader = DataLoader(dataset, batch_size=cfg.test_batch_size,
                        num_workers=loader_workers(cfg, ctx, logger),
                        pin_memory=device.type == "cuda")
    started = time.monotonic()
    try:
        with WorkerQueue(functools.partial(write_image_outputs, settings), workers) as writer, \
                torch.no_grad():
            model.to(device, memory_format=memory_format).eval()  # after the writer forked
            for batch in tqdm(loader, desc=seed_model.name, dynamic_ncols=True,
                              disable=not ctx.is_main):
                image = normalise_on_device(batch["image"].to(device, non_blocking=True),
                                            cfg.mean, cfg.std, cfg.channels_last)
                with autocast(dtype, device):
                    maps = seed_model.class_maps(model, image, batch["sal"].to(device), cfg)
                maps = maps.float().cpu().numpy()
                for j, name in enumerate(batch["name"]):
                    writer.submit(ImageJob(name, maps[j], tags_of(batch["label"][j]),
                                           batch["bg"][j].numpy(),
                                           tuple(batch["size"][j].tolist()),
                                           dataset.image_path(name)))
    except (Exception, KeyboardInterrupt) as exc:
        written = sum(map(settings.done, dataset.names))
        logger.info("%s", outputs_summary(written, total - todo, len(dataset.names) - written,
                                          time.monotonic() - started, settings.folders(), exc))
        raise
    barrier(ctx)
    logger.info("%s", outputs_summary(todo, total - todo, 0, time.monotonic() - started,
                                      settings.folders()))
