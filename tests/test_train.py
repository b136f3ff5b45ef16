import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from lib.config import load_config
from lib.dataset.voc12_sgan import VOC12ClsSalDataset
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
    assert sorted(os.listdir(run_dir)) == ["config.yml", "model_iter_2.pth", "model_iter_4.pth",
                                           "train.log", "train_state.pth"]
    saved = load_config(str(run_dir / "config.yml"))
    assert saved.max_iter == 4 and saved.dataset_root == synth_voc
    log = (run_dir / "train.log").read_text()
    assert "iter 2/4 loss" in log and "iter 4/4 loss" in log
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
