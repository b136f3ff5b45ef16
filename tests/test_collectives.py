"""Every collective takes its tensors on the process's device, as NCCL (the backend of every
multi-GPU job) requires: checked on the CPU for each inference path and a training step of
each stage, by stand-ins for the collectives that refuse any other tensor."""
import os
import signal

import pytest
import torch
import torch.distributed as dist
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from conftest import REPO
from infer_helpers import (
    CLS,
    SEG,
    WIDTH,
    infer_config,
    infer_seg_config,
    make_seeds_config,
    write_checkpoint,
    write_classifier_checkpoint,
    write_seg_checkpoint,
)
from lib import inference
from lib.config import load_config
from lib.stage1 import make_seeds
from lib.stage1.train_cls import ClassifierTraining
from lib.stage2 import infer_cam
from lib.stage2.train_sgan import SGANTraining
from lib.seeds import inference as seed_inference
from lib.stage3 import infer_seg
from lib.stage3.train_seg import SegTraining
from lib.training import loop
from lib.training.distributed import DistContext, max_over_processes, sum_over_processes

PAPER = os.path.join(REPO, "config", "sgan_vgg16_321x321.yml")
DEVICE = torch.device("cpu")  # the process's device: the only one that computes here


def _on_device(tensor):
    return getattr(tensor, "_on_process_device", False)


class ProcessDevice(TorchFunctionMode):
    """The process's device kept apart from the CPU, as a GPU is under NCCL: a tensor is on
    it when placed there (``.to(device)``, ``device=device``) or computed from a tensor that
    is; ``.cpu()`` brings back a copy that is not. Both are the CPU here, so this bookkeeping
    is what tells them apart; a tensor made without naming the device is not on it."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if func is torch.Tensor.cpu:
            return result.clone() if result is args[0] else result
        targets = [kwargs.get("device"), *(args[1:] if func is torch.Tensor.to else ())]
        placed = any(isinstance(t, (str, torch.device)) and torch.device(t) == DEVICE
                     for t in targets)
        if placed or any(_on_device(t) for t in tree_leaves((args, kwargs))
                         if torch.is_tensor(t)):
            for tensor in tree_leaves(result):
                if torch.is_tensor(tensor):
                    tensor._on_process_device = True
        return result


def _all_reduce(tensor, op=None, group=None, async_op=False):
    """NCCL's refusal of a tensor that is not on the process's device; the other process
    adds nothing."""
    if not _on_device(tensor):
        raise RuntimeError("No backend type associated with device type cpu")


@pytest.fixture
def two_processes(monkeypatch):
    """Process 0 of two: the collectives are stand-ins, inference starts there directly."""
    monkeypatch.setattr(dist, "all_reduce", _all_reduce)
    monkeypatch.setattr(dist, "barrier", lambda *args, **kwargs: None)
    ctx = DistContext(0, 2, DEVICE)
    monkeypatch.setattr(inference, "launch", lambda worker, cfg: worker(ctx, cfg))
    with ProcessDevice():
        yield ctx


def test_the_stand_in_refuses_a_tensor_made_without_the_device(two_processes):
    with pytest.raises(RuntimeError, match="device type cpu"):
        dist.all_reduce(torch.tensor([3]))
    dist.all_reduce(torch.tensor([3], device=DEVICE))
    dist.all_reduce(torch.tensor([3]).to(DEVICE) * 2)
    with pytest.raises(RuntimeError, match="device type cpu"):
        dist.all_reduce(torch.tensor([3], device=DEVICE).cpu())


def test_the_counts_and_stop_requests_of_the_processes_are_reduced_on_the_device(two_processes):
    """Inference counts the images left on every process; training asks every process after
    each iteration whether one of them got Ctrl-C or SIGTERM."""
    assert sum_over_processes(7, two_processes) == 7
    assert max_over_processes(signal.SIGTERM, two_processes) == signal.SIGTERM


def _pngs(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".png"))


def test_seed_inference_of_stages_1_and_2(two_processes, synth_voc, tmp_path):
    checkpoint = write_checkpoint(str(tmp_path / "sgan.pth"))
    seeds = infer_cam.run(infer_config(synth_voc, checkpoint, tmp_path / "res"))
    assert len(_pngs(seeds)) == 5  # process 0's half of the 10 training images

    checkpoint = write_classifier_checkpoint(str(tmp_path / "cls.pth"))
    cfg = make_seeds_config(synth_voc, checkpoint, tmp_path / "ini",
                            save_model_path=str(tmp_path / "model"))
    assert len(_pngs(make_seeds.run(cfg))) == 5


def test_label_inference_of_stage_3(two_processes, synth_voc, tmp_path):
    checkpoint = write_seg_checkpoint(str(tmp_path / "seg.pth"))
    folder = infer_seg.run(infer_seg_config(synth_voc, checkpoint, tmp_path / "res",
                                            test_batch_size=2, split="train"))
    assert _pngs(folder)


@pytest.mark.parametrize("task, cfg_file, overrides", [
    (ClassifierTraining(), CLS, {}),
    (SGANTraining(), PAPER, {}),
    (SegTraining(), SEG, {"seed_dir": "ini_seed/base_30_bg", "seg_resize": 41,
                          "crop_size": 33, "seg_pretrain": None})])
def test_a_training_step_of_every_stage(two_processes, synth_voc, task, cfg_file, overrides):
    if "seed_dir" in overrides:
        overrides["seed_dir"] = os.path.join(synth_voc, overrides["seed_dir"])
    cfg = load_config(cfg_file, {"dataset_root": synth_voc, "pretrain": None, "resize": 33,
                                 "batch_size": 4, "num_worker": 0, "width_mult": WIDTH,
                                 "max_iter": 1, **overrides})
    dataset = task.build_dataset(cfg)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(2)])  # a share of 4
    torch.manual_seed(0)
    model = task.network(cfg).to(DEVICE)
    optimizer = task.build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    task.start(cfg, two_processes)
    try:
        terms, stepped = loop.training_step(
            task, model, optimizer, scaler,
            loop.prepare_batch(batch, cfg, DEVICE, task.normalisation(cfg)), cfg,
            two_processes, None)
    finally:
        task.stop(False)
    assert stepped and set(terms) == set(task.term_names)


def test_a_process_that_stops_counts_its_own_share(two_processes, synth_voc, tmp_path,
                                                   monkeypatch):
    """Process 1's half is there; process 0 stops after one image of its own half: its last
    line counts its share (none skipped), not the other process's images as skipped."""
    cfg = infer_config(synth_voc, write_checkpoint(str(tmp_path / "sgan.pth")), tmp_path / "res")
    alone = DistContext(0, 1, DEVICE)
    monkeypatch.setattr(inference, "launch", lambda worker, cfg: worker(alone, cfg))
    folder = infer_cam.run(cfg)
    for name in _pngs(folder)[0::2]:  # process 0's half of the sorted names
        os.unlink(os.path.join(folder, name))
    monkeypatch.setattr(inference, "launch", lambda worker, cfg: worker(two_processes, cfg))
    write, written = seed_inference.write_image_outputs, []

    def failing(*args):
        if written:
            raise RuntimeError("disk full")
        written.append(write(*args))

    monkeypatch.setattr(seed_inference, "write_image_outputs", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        infer_cam.run(cfg)
    last = open(folder + ".log").read().splitlines()[-1]
    assert "process 0 of 2: stopped by an error" in last
    assert "1 images written, 0 skipped (already there), 4 failed" in last
