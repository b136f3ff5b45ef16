"""Seed inference, one stage of the inference skeleton (lib.inference) for stage 1
(make_seeds) and stage 2 (infer_cam).

The network runs in this process; each image's seeds and optional extras (class-map record,
picture) are made by lib.seeds.writer, in worker processes for the CRF so that the device keeps
working while the CPU runs CRFs. Several processes (torchrun, or ``num_processes``) each take
every world_size-th image; their outputs are disjoint files, written atomically, and a rerun
skips the images whose files exist (unless ``overwrite``). The two stages differ only in their
network (a :class:`SeedModel`) and their output settings.
"""
import dataclasses
import functools

import numpy as np

from lib.dataset.check import check_files
from lib.dataset.description import describe
from lib.dataset.voc12_sgan import VOC12SalInferDataset
from lib.inference import InferencePlan, InferenceStage, run_inference
from lib.normalisation import normalise_on_device
from lib.paths import check_dataset_paths
from lib.seeds.writer import ImageJob, write_image_outputs
from lib.training.run_folder import load_trained_network

# Config keys that change any stage's class maps, hence its seeds (the folder's record).
CLASS_MAP_KEYS = ("dataset_root", "cue_file", "backbone", "conv5_dilation", "width_mult",
                  "resize", "mean", "std", "sal_subdir", "sal_thresh", "sdnet_path", "bg_thresh",
                  "amp")


class SeedModel:
    """What differs between the stages: the network, its weights and its class maps."""

    name = "seeds"
    attends_to_saliency = True  # reads the attention mask of sal_subdir (recipe 2 step 6)
    record_keys = CLASS_MAP_KEYS  # config keys that change this network's class maps
    network_keys = ()  # config keys that choose the network: a checkpoint's run has its own
    # (and its input's mean and std: lib.training.run_folder.INPUT_KEYS)
    retry_hint = "or write elsewhere"  # how to choose another output folder

    def network(self, cfg):
        """The network the configuration describes (weights not yet loaded)."""
        raise NotImplementedError

    def build(self, cfg):
        """The network of the chosen checkpoint, loaded (lib.training.run_folder's
        TrainedNetwork); raise before anything is written."""
        return load_trained_network(cfg, self.network_keys, self.network)

    def class_maps(self, model, image, sal, cfg):
        """float32 (batch, C, h, w) class maps M of normalised images and saliency masks."""
        raise NotImplementedError


def inference_dataset(cfg, attends_to_saliency=True, names=None, normalise=False):
    """The images of the tags file (or ``names``) as recipe 5 reads them at inference: input
    side ``resize``, attention mask from ``sal_subdir`` with ``sal_thresh``, background from
    ``sdnet_path`` with ``bg_thresh`` (``new_size`` is read by nothing, as published).
    A network without attention reads ``sdnet_path`` only. Images stay uint8 unless
    ``normalise`` (the loop normalises them on the device)."""
    return VOC12SalInferDataset(
        cfg.dataset_root, cfg.cue_file, new_size=cfg.resize, mean=cfg.mean, std=cfg.std,
        sal_subdir=cfg.sal_subdir if attends_to_saliency else cfg.sdnet_path,
        sal_thresh=cfg.sal_thresh, names=names, normalise=normalise,
        bg_subdir=cfg.sdnet_path, bg_thresh=cfg.bg_thresh, description=describe(cfg))


def tags_of(label):
    """Classes 1..C of a multi-hot label (C,)."""
    return np.flatnonzero(np.asarray(label)) + 1


def infer_seeds(cfg, seed_model, settings):
    """Write the seeds ``settings`` describes for every image of the tags file, on every
    process of the job (lib.training.distributed.launch)."""
    run_inference(cfg, SeedInference(seed_model, settings))


class SeedInference(InferenceStage):
    """The seeds of a :class:`SeedModel`'s class maps, as ``settings`` (lib.seeds.writer's
    OutputSettings) asks."""

    def __init__(self, seed_model, settings):
        self.seed_model, self.settings = seed_model, settings
        self.name = seed_model.name

    def plan(self, cfg):
        check_dataset_paths(cfg, "cue_file")
        trained = self.seed_model.build(cfg)  # check the inputs before writing anything
        cfg = trained.cfg  # with the dataset_name of the network's run
        settings = dataclasses.replace(self.settings, dataset=describe(cfg))
        dataset = inference_dataset(cfg, self.seed_model.attends_to_saliency)
        check_files(dataset.names, dataset.image_path, dataset.map_paths())
        return InferencePlan(
            trained=trained, dataset=dataset, folder=settings.seed_dir,
            record={**{key: cfg[key] for key in self.seed_model.record_keys},
                    **settings.record()},
            retry_hint=self.seed_model.retry_hint,
            describe=lambda count: f"{settings.seed_mode} seeds for {count} images",
            write=functools.partial(write_image_outputs, settings), done=settings.done,
            remove=settings.remove, folders=settings.folders(),
            crf=settings.seed_mode == "crf")

    def jobs(self, plan, batch, on):
        cfg = plan.trained.cfg
        image = normalise_on_device(batch["image"].to(on.device, non_blocking=True),
                                    cfg.mean, cfg.std, cfg.channels_last)
        with on.autocast():
            maps = self.seed_model.class_maps(plan.trained.model, image,
                                              batch["sal"].to(on.device), cfg)
        maps = maps.float().cpu().numpy()
        return [(ImageJob(name, maps[j], tags_of(batch["label"][j]), batch["bg"][j].numpy(),
                          tuple(batch["size"][j].tolist()), plan.dataset.image_path(name)), ())
                for j, name in enumerate(batch["name"])]
