import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO, listed_run_files
from lib.config import load_config
from lib.dataset.voc12_sgan import VOC12ClsSalDataset
from lib.errors import UserError
from lib.losses import sgan_loss
from lib.network.checkpoint import read_state_dict
from lib.network.sgan import SGAN
from lib.optim import build_optimizer, poly_lr, set_lr

PAPER = os.path.join(REPO, "config", "sgan_vgg16_321x321.yml")


def test_poly_schedule():
    assert poly_lr(0.001, 0, 8000) == 0.001
    assert poly_lr(0.001, 4000, 8000) == pytest.approx(0.001 * 0.5 ** 0.9)
    assert poly_lr(0.001, 7999, 8000) == pytest.approx(0.001 * (1 / 8000) ** 0.9)


def test_four_groups_lr_and_decay():
    model = SGAN(width_mult=0.125)
    optimizer = build_optimizer(model, lr=0.001, weight_decay=5e-4)
    set_lr(optimizer, poly_lr(0.001, 100, 8000))
    base = 0.001 * (1 - 100 / 8000) ** 0.9
    got = [(g["lr"], g["weight_decay"], g["momentum"]) for g in optimizer.param_groups]
    expected = [(base, 5e-4), (2 * base, 0.0), (10 * base, 5e-4), (20 * base, 0.0)]
    for (lr, wd, momentum), (elr, ewd) in zip(got, expected):
        assert lr == pytest.approx(elr) and wd == ewd and momentum == 0.9


def test_seed_loss_ignores_index_20_and_survives_an_empty_batch():
    score = torch.zeros(2, 20)
    label = torch.zeros(2, 20)
    seg = torch.randn(2, 20, 3, 3)
    seed = torch.full((2, 3, 3), 20)
    total, cls, seed_loss = sgan_loss(score, seg, label, seed, 0.15)
    assert seed_loss.item() == 0 and total.item() == pytest.approx(cls.item())
    seed[0, 1, 1] = 7
    _, _, seed_loss = sgan_loss(score, seg, label, seed, 0.15)
    expected = torch.nn.functional.cross_entropy(seg, seed, ignore_index=20)
    assert seed_loss.item() == pytest.approx(expected.item())
    total, cls, seed_loss = sgan_loss(score, seg, label, seed, 0.15, use_seed_loss=False)
    assert seed_loss.item() == 0


def test_one_step_lowers_the_loss_on_a_fixed_batch(synth_voc):
    torch.manual_seed(0)
    dataset = VOC12ClsSalDataset(synth_voc, "im_tags.pkl", new_size=65, mirror=False)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(4)])
    model = SGAN(width_mult=0.25, init="kaiming")
    model.dropout.p = 0.0
    optimizer = build_optimizer(model, lr=0.001, weight_decay=5e-4)

    def loss():
        score, seg = model(batch["image"], batch["sal"])
        return sgan_loss(score, seg, batch["label"], batch["seed"], 0.15)[0]

    before = loss()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item()


def test_train_cli_writes_checkpoints_log_and_config(synth_voc, tmp_path):
    out = tmp_path / "model"
    cmd = [sys.executable, "tools/stage2/train_sgan.py", "--cfg_file", PAPER,
           f"dataset_root={synth_voc}", "pretrain=", "resize=33", "max_iter=4", "step_size=2",
           "batch_size=3", "num_worker=0", f"save_model_path={out}", "width_mult=0.125",
           "display_step=2", "cfg_name=tiny"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    run_dir = out / "tiny"
    assert listed_run_files(run_dir) == ["config.yml", "metrics.csv", "model_iter_2.pth",
                                         "model_iter_4.pth", "train.log", "train_state.pth"]
    saved = load_config(str(run_dir / "config.yml"))
    assert saved.max_iter == 4 and saved.dataset_root == synth_voc
    log = (run_dir / "train.log").read_text()
    assert "iter 2/4 loss" in log and "iter 4/4 loss" in log
    # stderr is not a terminal here: the log's lines, no progress bar's carriage returns
    assert "iter 4/4 loss" in result.stderr and "\r" not in result.stderr
    state = read_state_dict(str(run_dir / "model_iter_4.pth"))
    first = read_state_dict(str(run_dir / "model_iter_2.pth"))
    assert set(state) == set(SGAN().state_dict())
    assert not torch.equal(state["fc8.weight"], first["fc8.weight"])


def test_train_cli_reports_a_missing_pretrain_in_one_line(synth_voc, tmp_path):
    cmd = [sys.executable, "tools/stage2/train_sgan.py", "--cfg_file", PAPER,
           f"dataset_root={synth_voc}", "pretrain=nowhere.pth", f"save_model_path={tmp_path}"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "'pretrain'" in result.stderr
    assert "tools/stage1/train_cls.py" in result.stderr and "pretrain= init=kaiming" in result.stderr


def _train_cfg(root, out, **extra):
    overrides = {"dataset_root": root, "pretrain": None, "resize": 33, "batch_size": 3,
                 "num_worker": 0, "save_model_path": str(out), "width_mult": 0.125,
                 "cfg_name": "run", "display_step": 1, **extra}
    return load_config(PAPER, overrides)


class _Killed(Exception):
    """Stands for a kill right after a checkpoint was written."""


def test_resume_refuses_a_changed_training_key_and_keeps_the_record(synth_voc, tmp_path,
                                                                     monkeypatch):
    from lib.stage2 import train_sgan
    from lib.training import loop

    save = loop.save_checkpoint

    def save_then_die(model, optimizer, step, cfg, ctx):
        save(model, optimizer, step, cfg, ctx)
        raise _Killed

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        train_sgan.run(_train_cfg(synth_voc, tmp_path, max_iter=3, step_size=2))
    monkeypatch.setattr(loop, "save_checkpoint", save)
    run_dir = tmp_path / "run"
    record = (run_dir / "config.yml").read_bytes()
    for key, value, saved in [("batch_size", 2, 3), ("lr", 0.01, 0.001), ("max_iter", 4, 3)]:
        with pytest.raises(UserError) as err:
            train_sgan.run(_train_cfg(synth_voc, tmp_path, **{
                "max_iter": 3, "step_size": 2, "resume": True, key: value}))
        message = str(err.value)
        assert f"'{key}'" in message and repr(value) in message and repr(saved) in message
        assert "\n" not in message and "cfg_name" in message
    assert listed_run_files(run_dir) == ["config.yml", "metrics.csv", "model_iter_2.pth",
                                         "train.log", "train_state.pth"]

    # run-time keys and keys read after training may change; the record keeps the run's own
    train_sgan.run(_train_cfg(synth_voc, tmp_path, max_iter=3, step_size=1, resume=True,
                              display_step=3, cam_thresh=0.5))
    assert (run_dir / "model_iter_3.pth").exists()
    assert (run_dir / "config.yml").read_bytes() == record
    log = (run_dir / "train.log").read_text()
    assert "changed: step_size 2 -> 1, display_step 1 -> 3\n" in log  # cam_thresh: not train_sgan's


def test_a_key_added_since_a_run_was_saved_compares_as_its_default():
    from lib.config import SCHEMA
    from lib.training.checkpointing import changed_keys
    cfg = load_config(PAPER)
    saved = {k: cfg[k] for k in SCHEMA if k != "amp"}
    assert changed_keys(saved, cfg) == []
    cfg.amp = "bf16"
    assert changed_keys(saved, cfg) == [("amp", "off", "bf16")]


def test_a_loader_that_ends_early_is_an_error(synth_voc, tmp_path, monkeypatch):
    from lib.stage2 import train_sgan
    from lib.training.loop import TrainingTask
    options = TrainingTask.sample_options
    monkeypatch.setattr(TrainingTask, "sample_options", staticmethod(
        lambda cfg: {**options(cfg), "max_iters": 10}))  # the 10 names once: 3 batches of 3
    with pytest.raises(UserError) as err:
        train_sgan.run(_train_cfg(synth_voc, tmp_path, max_iter=5, step_size=10))
    assert "ran out after iteration 3 of 5" in str(err.value)
    assert not (tmp_path / "run" / "model_iter_5.pth").exists()


class _Affine:
    """A task whose loss is w . x, and whose weight gradient can be made to overflow."""

    term_names = ("loss",)

    def __init__(self):
        self.model = torch.nn.Linear(3, 1)
        self.overflow = False
        self.model.weight.register_hook(lambda g: g * math.inf if self.overflow else g)

    def loss(self, net, batch, cfg, ctx, dtype):
        loss = net(batch).sum()
        return loss, loss.detach().reshape(1)


def _step(task, scaler, batch):
    from lib.training.distributed import DistContext
    from lib.training.loop import training_step
    optimizer = torch.optim.SGD(task.model.parameters(), lr=0.1)
    before = task.model.weight.detach().clone()
    terms, stepped = training_step(task, task.model, optimizer, scaler, batch, None,
                                   DistContext(0, 1, torch.device("cpu")), None)
    return stepped, not torch.equal(task.model.weight, before)


def test_fp16_skips_overflowing_steps_and_counts_a_nan_loss_as_one():
    from lib.training.loop import NonFiniteLoss
    task = _Affine()
    scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=1024.0)
    assert _step(task, scaler, torch.ones(2, 3)) == (True, True)
    task.overflow = True
    assert _step(task, scaler, torch.ones(2, 3)) == (False, False)  # the scaler's own skip
    assert scaler.get_scale() == 512
    task.overflow = False
    assert _step(task, scaler, torch.full((2, 3), math.nan)) == (False, False)  # not raised
    assert scaler.get_scale() == 512  # the forward pass overflowed, not the gradients
    with pytest.raises(NonFiniteLoss):
        _step(task, torch.amp.GradScaler("cpu", enabled=False), torch.full((2, 3), math.nan))


def test_a_long_run_of_skipped_steps_stops_with_the_scale():
    from lib.training.loop import SkippedSteps, TrainingStopped
    scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=1024.0)
    skipped = SkippedSteps(scaler, limit=3)
    for stepped in (True, False, False, True, False, False):
        skipped.record(stepped)
    assert skipped.summary() == " fp16 scale 1024 skipped 4"
    with pytest.raises(TrainingStopped) as err:
        skipped.record(False)
    assert "last 3 steps were skipped" in str(err.value) and "scale now 1024" in str(err.value)
    assert SkippedSteps(torch.amp.GradScaler("cpu", enabled=False), 3).summary() == ""


def test_fp16_training_logs_the_scale_and_stops_after_the_skip_limit(synth_voc, tmp_path,
                                                                     monkeypatch):
    from lib.stage2 import train_sgan
    from lib.stage2.train_sgan import SGANTraining
    from lib.training import loop
    monkeypatch.setattr(loop, "amp_dtype", lambda amp, device: torch.float16)  # CPU autocast
    monkeypatch.setattr(loop, "MAX_SKIPPED_STEPS", 3)
    real_loss, calls = SGANTraining.loss, []

    def diverging_loss(self, *args):
        loss, terms = real_loss(self, *args)
        calls.append(1)
        return (loss, terms) if len(calls) == 1 else (loss * math.inf, terms * math.inf)

    monkeypatch.setattr(SGANTraining, "loss", diverging_loss)
    with pytest.raises(UserError) as err:
        train_sgan.run(_train_cfg(synth_voc, tmp_path, max_iter=10, amp="fp16"))
    assert "last 3 steps were skipped" in str(err.value) and "at iteration 4;" in str(err.value)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "fp16 scale 65536 skipped 0" in log and "fp16 scale 65536 skipped 2" in log
