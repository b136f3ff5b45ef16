"""What only a GPU can prove (marked ``cuda``, skipped without one; ``make gpu-check`` runs them):
SGAN's training loop in fp32, bf16 with channels_last and fp16, the fp16 scaler skipping an
injected overflow and recovering, float32 gradients equal to the CPU's, seed inference with
channels_last and amp against fp32, stage 3's training loop (CRF workers beside CUDA) and step,
its inference, two processes over nccl, and the pinned-memory loader."""
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO
from infer_helpers import infer_config, write_checkpoint
from lib.config import load_config
from lib.dataset.voc12_sgan import VOC12ClsSalDataset
from lib.network.checkpoint import read_state_dict, save_state_dict
from lib.network.deeplab import BRANCHES, DeepLabV2
from lib.optim import set_lr
from lib.stage2 import infer_cam, train_sgan
from lib.stage2.train_sgan import SGANTraining
from lib.stage3 import infer_seg, train_seg
from lib.stage3.train_seg import SegTraining
from lib.training.distributed import DistContext
from lib.training.loop import (
    SkippedSteps,
    TrainingStopped,
    build_train_loader,
    prepare_batch,
    training_step,
)

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
DEVICE = torch.device("cuda")
CPU = torch.device("cpu")
PAPER = os.path.join(REPO, "config", "sgan_vgg16_321x321.yml")
SEG = os.path.join(REPO, "config", "seg_deeplabv2_vgg16.yml")
SAME_LABELS = 0.999  # recipe 11.5's bar: CUDA in float32 against the CPU
AMP_LABELS = 0.99  # amp against float32 (random networks: many near-ties; bf16 seeds 99.9%
# and fp16 stage-3 labels 99.9% in CPU autocast, bf16 stage-3 labels only 99.2%)
ITERATIONS = 8  # fp16 may skip its first steps while the scaler finds its scale


@pytest.fixture(autouse=True)
def float32_without_tf32():
    """float32 as float32: cuDNN's TF32 convolutions (10-bit mantissa) off while a test runs."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def sgan_config(root, out, **extra):
    return load_config(PAPER, {
        "dataset_root": root, "pretrain": None, "resize": 65, "batch_size": 4, "num_worker": 2,
        "save_model_path": str(out), "width_mult": 0.25, "cfg_name": "run", "display_step": 1,
        "device": DEVICE.type, "max_iter": ITERATIONS, "step_size": ITERATIONS, **extra})


def seg_config(root, out, **extra):
    return load_config(SEG, {
        "dataset_root": root, "seed_dir": os.path.join(root, "ini_seed", "base_30_bg"),
        "seg_pretrain": None, "seg_resize": 73, "crop_size": 65, "batch_size": 4,
        "num_worker": 2, "display_step": 1, "test_scales": [49, 65], "split": "train_aug",
        "save_model_path": str(out), "res_path": str(out), "device": DEVICE.type,
        "max_iter": 3, "step_size": 3, "crf_workers": 2, **extra})


def initial_state(task, cfg):
    """The weights the loop starts from (it seeds with random_seed before building)."""
    torch.manual_seed(cfg.random_seed)
    return task.build_model(cfg, None).state_dict()


def assert_trained(path, initial, changed_key):
    trained = read_state_dict(str(path))
    assert all(torch.isfinite(v).all() for v in trained.values() if v.is_floating_point())
    assert not torch.equal(trained[changed_key], initial[changed_key])


def agreement(first, second):
    """Fraction of pixels where the label PNGs of two folders agree (every PNG of ``first``)."""
    same = total = 0
    for name in sorted(f for f in os.listdir(first) if f.endswith(".png")):
        a, b = (np.asarray(Image.open(os.path.join(folder, name))) for folder in (first, second))
        same += int((a == b).sum())
        total += a.size
    assert total > 0
    return same / total


@pytest.mark.parametrize("amp,channels_last", [("off", False), ("bf16", True), ("fp16", False)])
def test_sgan_trains_through_the_loop(synth_voc, tmp_path, amp, channels_last):
    cfg = sgan_config(synth_voc, tmp_path, amp=amp, channels_last=channels_last)
    train_sgan.run(cfg)
    assert_trained(tmp_path / "run" / f"model_iter_{ITERATIONS}.pth",
                   initial_state(SGANTraining(), cfg), "fc8.weight")
    log = (tmp_path / "run" / "train.log").read_text()
    assert f" x {DEVICE.type}" in log and "needs CUDA" not in log
    assert ("fp16 scale" in log) == (amp == "fp16")


def first_batch(root, cfg, count=4):
    dataset = VOC12ClsSalDataset(root, cfg.cue_file, new_size=cfg.resize, normalise=False)
    return torch.utils.data.default_collate([dataset[i] for i in range(count)])


def sgan_gradients(cfg, batch, device):
    """Loss terms and gradients of SGANTraining's loss (dropout off) on ``device``."""
    task = SGANTraining()
    torch.manual_seed(0)
    model = task.build_model(cfg, None)
    model.dropout.p = 0.0
    model.to(device).train()
    loss, terms = task.loss(model, prepare_batch(batch, cfg, device), cfg,
                            DistContext(0, 1, device), None)
    loss.backward()
    return terms.cpu(), {n: p.grad.cpu() for n, p in model.named_parameters()
                         if p.grad is not None}


def assert_gradients_close(cuda, cpu):
    assert cuda.keys() == cpu.keys()
    for name, grad in cpu.items():
        torch.testing.assert_close(cuda[name], grad, rtol=1e-3,
                                   atol=1e-3 * float(grad.abs().max()), msg=name)


def test_sgan_float32_gradients_equal_the_cpu_ones(synth_voc, tmp_path):
    cfg = sgan_config(synth_voc, tmp_path)
    batch = first_batch(synth_voc, cfg)
    (cuda_terms, cuda), (cpu_terms, cpu) = (sgan_gradients(cfg, batch, d) for d in (DEVICE, CPU))
    torch.testing.assert_close(cuda_terms, cpu_terms, rtol=1e-4, atol=0)
    assert_gradients_close(cuda, cpu)


class _Overflow:
    """A gradient hook that turns the gradient infinite while ``on``."""

    on = False

    def __call__(self, grad):
        return grad * math.inf if self.on else grad


def test_fp16_scaler_skips_an_injected_overflow_and_recovers(synth_voc, tmp_path):
    cfg = sgan_config(synth_voc, tmp_path, amp="fp16")
    task = SGANTraining()
    torch.manual_seed(0)
    model = task.build_model(cfg, None).to(DEVICE).train()
    optimizer = task.build_optimizer(model, cfg)
    set_lr(optimizer, cfg.lr)
    scaler = torch.amp.GradScaler(DEVICE.type, init_scale=1024.0)
    skipped = SkippedSteps(scaler, limit=3)
    overflow = _Overflow()
    model.fc8.weight.register_hook(overflow)
    batch = prepare_batch(first_batch(synth_voc, cfg), cfg, DEVICE)
    ctx = DistContext(0, 1, DEVICE)

    def step():
        before = [p.detach().clone() for p in model.parameters()]
        _, stepped = training_step(task, model, optimizer, scaler, batch, cfg, ctx,
                                   torch.float16)
        skipped.record(stepped)
        return stepped, any(not torch.equal(p, b) for p, b in zip(model.parameters(), before))

    assert step() == (True, True) and scaler.get_scale() == 1024
    overflow.on = True
    assert step() == (False, False) and scaler.get_scale() == 512
    assert step() == (False, False) and scaler.get_scale() == 256
    overflow.on = False
    assert step() == (True, True) and skipped.in_a_row == 0 and skipped.total == 2
    overflow.on = True
    step()
    step()
    with pytest.raises(TrainingStopped, match="last 3 steps were skipped"):
        step()


@pytest.fixture(scope="module")
def seed_checkpoint(tmp_path_factory):
    return write_checkpoint(str(tmp_path_factory.mktemp("sgan") / "model.pth"))


def test_seed_inference_with_channels_last_and_amp_gives_the_float32_seeds(
        synth_voc, seed_checkpoint, tmp_path):
    def seeds(name, **extra):
        return infer_cam.run(infer_config(synth_voc, seed_checkpoint, tmp_path / name,
                                          resize=321, num_worker=2, **extra))

    reference = seeds("cuda", device=DEVICE.type)
    assert agreement(reference, seeds("cpu", device="cpu")) >= SAME_LABELS
    assert agreement(reference, seeds("cl", device=DEVICE.type, channels_last=True)) \
        >= SAME_LABELS
    for amp in ("bf16", "fp16"):
        folder = seeds(amp, device=DEVICE.type, channels_last=True, amp=amp)
        assert agreement(reference, folder) >= AMP_LABELS, amp


def test_stage3_trains_through_the_loop_with_crf_workers(synth_voc, tmp_path):
    cfg = seg_config(synth_voc, tmp_path, amp="bf16", channels_last=True)
    train_seg.run(cfg)
    assert_trained(tmp_path / cfg.cfg_name / "model_iter_3.pth",
                   initial_state(SegTraining(), cfg), "fc8_1.weight")


def seg_gradients(cfg, batch, device):
    """Loss terms and gradients of SegTraining's loss (dropout off, serial CRF) on ``device``."""
    task = SegTraining()
    torch.manual_seed(0)
    model = task.build_model(cfg, None)
    model.dropout.p = 0.0
    model.to(device).train()
    ctx = DistContext(0, 1, device)
    task.start(cfg, ctx)
    try:
        loss, terms = task.loss(model, prepare_batch(batch, cfg, device, task.normalisation(cfg)),
                                cfg, ctx, None)
        loss.backward()
    finally:
        task.stop(False)
    return terms.cpu(), {n: p.grad.cpu() for n, p in model.named_parameters()
                         if p.grad is not None}


def test_stage3_float32_step_equals_the_cpu_one(synth_voc, tmp_path):
    cfg = seg_config(synth_voc, tmp_path, crf_workers=0)
    dataset = SegTraining().build_dataset(cfg)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(cfg.batch_size)])
    (cuda_terms, cuda), (cpu_terms, cpu) = (seg_gradients(cfg, batch, d) for d in (DEVICE, CPU))
    torch.testing.assert_close(cuda_terms, cpu_terms, rtol=1e-4, atol=0)
    assert_gradients_close(cuda, cpu)


@pytest.fixture(scope="module")
def seg_checkpoint(tmp_path_factory):
    """A DeepLabV2 whose labels follow the image (He-initialised convolutions: a default
    initialisation gives one label everywhere)."""
    torch.manual_seed(0)
    model = DeepLabV2()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                torch.nn.init.zeros_(module.bias)
        for i in BRANCHES:
            torch.nn.init.normal_(getattr(model, f"fc8_{i}").weight, std=0.01)
    path = str(tmp_path_factory.mktemp("deeplab") / "model.pth")
    save_state_dict(model.state_dict(), path)
    return path


def test_stage3_inference_on_cuda_gives_the_cpu_labels(synth_voc, seg_checkpoint, tmp_path):
    def labels(name, **extra):
        return infer_seg.run(seg_config(synth_voc, tmp_path / name, checkpoint=seg_checkpoint,
                                        **extra))

    reference = labels("cuda")
    assert agreement(reference, labels("cpu", device="cpu")) >= SAME_LABELS
    assert agreement(reference, labels("fp16", amp="fp16", channels_last=True)) >= AMP_LABELS


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_processes_train_over_nccl(synth_voc, tmp_path):
    cfg = sgan_config(synth_voc, tmp_path, num_processes=2, max_iter=2, step_size=2)
    train_sgan.run(cfg)
    assert_trained(tmp_path / "run" / "model_iter_2.pth", initial_state(SGANTraining(), cfg),
                   "fc8.weight")
    assert " on 2 x cuda" in (tmp_path / "run" / "train.log").read_text()


def test_the_loader_pins_memory_and_the_device_batch_equals_the_cpu_one(synth_voc, tmp_path):
    cfg = sgan_config(synth_voc, tmp_path)
    loader = build_train_loader(SGANTraining().build_dataset(cfg), cfg,
                                DistContext(0, 1, DEVICE), workers=2)
    batch = next(iter(loader))
    tensors = [key for key, value in batch.items() if torch.is_tensor(value)]
    assert tensors and all(batch[key].is_pinned() for key in tensors)
    on_device, on_cpu = prepare_batch(batch, cfg, DEVICE), prepare_batch(batch, cfg, CPU)
    for key in tensors:
        assert on_device[key].device.type == DEVICE.type
        assert torch.equal(on_device[key].cpu(), on_cpu[key]), key  # normalised alike, exactly
