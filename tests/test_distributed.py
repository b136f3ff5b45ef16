"""Multi-process training on CPU (gloo): same gradients, same batches, resume, auto-spawn."""
import os
import signal
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from conftest import REPO
from lib.config import load_config
from lib.dataset.sampler import GlobalBatchSampler
from lib.dataset.voc12_sgan import VOC12ClsSalDataset
from lib.errors import UserError
from lib.network.checkpoint import read_state_dict
from lib.network.sgan import SGAN
from lib.stage2 import train_sgan
from lib.stage2.train_sgan import SGANTraining
from lib.training import loop as training
from lib.training.distributed import DistContext

PAPER = os.path.join(REPO, "config", "sgan_vgg16_321x321.yml")
GLOBAL_BATCH = 5  # does not divide by 2 processes: shares of 3 and 2


def _model():
    torch.manual_seed(0)
    model = SGAN(width_mult=0.125)
    model.dropout.p = 0.0
    return model


class _RecordingOptimizer:
    """Stands for SGD in training_step: keeps the gradients it would step with."""

    def __init__(self, model):
        self.model = model
        self.gradients = None

    def zero_grad(self, set_to_none=True):
        self.model.zero_grad(set_to_none=set_to_none)

    def step(self):
        self.gradients = {n: p.grad.clone() for n, p in self.model.named_parameters()}


def _production_gradients(root, ctx, net=None, model=None):
    """The gradients of lib.training.loop.training_step with SGANTraining's loss on this
    process's share of the first global batch (all of it on one process)."""
    cfg = load_config(PAPER, {"dataset_root": root, "batch_size": GLOBAL_BATCH, "resize": 33})
    dataset = VOC12ClsSalDataset(root, "im_tags.pkl", new_size=33, mirror=True)
    indices = next(iter(GlobalBatchSampler(len(dataset), GLOBAL_BATCH, 1, ctx.rank,
                                           ctx.world_size)))
    batch = training.prepare_batch(
        torch.utils.data.default_collate([dataset[i] for i in indices]), cfg, ctx.device)
    model = model or _model()
    optimizer = _RecordingOptimizer(model)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    training.training_step(SGANTraining(), net or model, optimizer, scaler, batch, cfg, ctx, None)
    return optimizer.gradients


def _two_process_step(rank, root, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    model = _model()
    grads = _production_gradients(root, DistContext(rank, 2, torch.device("cpu")),
                                  DistributedDataParallel(model), model)
    if rank == 0:
        torch.save(grads, out)
    dist.destroy_process_group()


def test_two_process_gradients_equal_one_process(synth_voc, tmp_path):
    from lib.training.distributed import _free_port
    out = str(tmp_path / "grads.pt")
    mp.spawn(_two_process_step, args=(synth_voc, _free_port(), out), nprocs=2)
    shared = torch.load(out)
    single = _production_gradients(synth_voc, DistContext(0, 1, torch.device("cpu")))
    for name, grad in single.items():
        torch.testing.assert_close(shared[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_global_batches_are_split_without_loss_or_repeat():
    whole = list(GlobalBatchSampler(47, 15, seed=3))
    shares = [list(GlobalBatchSampler(47, 15, seed=3, rank=r, world_size=4)) for r in range(4)]
    assert len(whole) == 3 and all(len(s) == 3 for s in shares)
    for b, batch in enumerate(whole):
        assert sum((s[b] for s in shares), []) == batch
        assert sorted(len(s[b]) for s in shares) == [3, 4, 4, 4]
    assert list(GlobalBatchSampler(47, 15, seed=3, start_batch=2)) == whole[2:]


def _train_cfg(root, out, **extra):
    overrides = {"dataset_root": root, "pretrain": None, "resize": 33, "batch_size": 3,
                 "num_worker": 0, "save_model_path": str(out), "width_mult": 0.125,
                 "cfg_name": "run", "display_step": 1, **extra}
    return load_config(PAPER, overrides)


class _Killed(Exception):
    """Stands for a kill right after a checkpoint was written."""


def test_resume_reaches_the_weights_of_an_uninterrupted_run(synth_voc, tmp_path, monkeypatch):
    train_sgan.run(_train_cfg(synth_voc, tmp_path / "whole", max_iter=4, step_size=2))

    save = training.save_checkpoint

    def save_then_die(model, optimizer, step, cfg, ctx):
        path = save(model, optimizer, step, cfg, ctx)
        if step == 2:
            raise _Killed
        return path

    monkeypatch.setattr(training, "save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        train_sgan.run(_train_cfg(synth_voc, tmp_path / "cut", max_iter=4, step_size=2))
    monkeypatch.setattr(training, "save_checkpoint", save)
    assert not (tmp_path / "cut" / "run" / "model_iter_4.pth").exists()
    train_sgan.run(_train_cfg(synth_voc, tmp_path / "cut", max_iter=4, step_size=2, resume=True))

    whole = read_state_dict(str(tmp_path / "whole" / "run" / "model_iter_4.pth"))
    resumed = read_state_dict(str(tmp_path / "cut" / "run" / "model_iter_4.pth"))
    for key, value in whole.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, msg=key)
    assert "resumed from" in (tmp_path / "cut" / "run" / "train.log").read_text()


def test_resume_without_a_state_is_one_line(synth_voc, tmp_path):
    cmd = [sys.executable, "tools/stage2/train_sgan.py", "--cfg_file", PAPER,
           f"dataset_root={synth_voc}", f"save_model_path={tmp_path}", "resume=true"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "'resume'" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_self_spawned_processes_train_through_the_cli(synth_voc, tmp_path):
    cmd = [sys.executable, "tools/stage2/train_sgan.py", "--cfg_file", PAPER,
           f"dataset_root={synth_voc}", "pretrain=", "resize=33", "max_iter=2", "step_size=2",
           "batch_size=3", "num_worker=0", f"save_model_path={tmp_path}", "width_mult=0.125",
           "num_processes=2", "cfg_name=ddp"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "on 2 x cpu" in (tmp_path / "ddp" / "train.log").read_text()
    state = read_state_dict(str(tmp_path / "ddp" / "model_iter_2.pth"))
    assert set(state) == set(SGAN().state_dict())


def test_self_spawned_processes_stopped_by_sigterm_save_together_and_resume(synth_voc,
                                                                            tmp_path):
    """Each process saves its RNG state through a collective: all stop at one iteration."""
    from lib.network.checkpoint import load_file
    from lib.signal_point import ENV
    cmd = [sys.executable, "tools/stage2/train_sgan.py", "--cfg_file", PAPER,
           f"dataset_root={synth_voc}", "pretrain=", "resize=33", "max_iter=2", "step_size=2",
           "batch_size=3", "num_worker=0", f"save_model_path={tmp_path}", "width_mult=0.125",
           "num_processes=2", "cfg_name=ddp"]
    stopped = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                             env={**os.environ, ENV: "iteration:1:SIGTERM"})
    assert stopped.returncode == 143, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == \
        "interrupted (see the last line of process 0 above)"
    state = load_file(str(tmp_path / "ddp" / "train_state.pth"))
    assert state["iteration"] == 1 and len(state["rng"]) == 2
    log = (tmp_path / "ddp" / "train.log").read_text().splitlines()
    assert "interrupted by SIGTERM at iteration 1 of 2" in log[-1]
    assert log[-1].endswith(" ".join(cmd[1:]) + " resume=true")
    resumed = subprocess.run([*cmd, "resume=true"], cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "ddp" / "model_iter_2.pth").exists()


class _FailingOn:
    """A worker for launch whose processes ``ranks`` raise UserError(``message``)."""

    def __init__(self, ranks, message):
        self.ranks, self.message = ranks, message

    def __call__(self, ctx, cfg):
        if ctx.rank in self.ranks:
            raise UserError(self.message.format(rank=ctx.rank))


@pytest.mark.parametrize("ranks, message, line", [
    ((1,), "no seed for image {rank}", "process 1 of 2: no seed for image 1"),
    ((0, 1), "bad input", "bad input"),
    ((0, 1), "no seed for image {rank}",
     "no seed for image 0; process 1 of 2: no seed for image 1"),
])
def test_self_spawned_processes_user_errors_are_one_line_each_message_once(capfd, ranks, message,
                                                                            line):
    """Only process 0 printed its error: one that failed on process 1 alone read "process 1 of 2
    failed (exit code 2); see its message above", with no message above."""
    from lib.training.distributed import launch
    with pytest.raises(UserError) as err:
        launch(_FailingOn(ranks, message), load_config(None, ["device=cpu", "num_processes=2"]))
    assert str(err.value) == line
    printed = capfd.readouterr().err  # by the processes: nothing, the parent reports
    assert "no seed" not in printed and "bad input" not in printed


def _killed_by_sigterm(ctx, cfg):
    """A process's work ended by SIGTERM before it had a handler (the default: it dies)."""
    os.kill(os.getpid(), signal.SIGTERM)


def test_self_spawned_processes_killed_by_sigterm_are_an_interruption():
    """A process that a passed-on SIGTERM killed ends with -15, not 143: it was reported as
    "process 0 of 2 failed (exit code -15)", exit status 2."""
    from lib.errors import Interrupted
    from lib.training.distributed import launch
    with pytest.raises(Interrupted) as err:
        launch(_killed_by_sigterm, load_config(None, ["device=cpu", "num_processes=2"]))
    assert err.value.status == 143
    assert str(err.value) == "interrupted (see the last line of process 0 above)"


def test_two_process_seed_folder_equals_one_process(synth_voc, tmp_path):
    from infer_helpers import infer_config, write_checkpoint
    from lib.stage2 import infer_cam
    checkpoint = write_checkpoint(str(tmp_path / "m.pth"))
    one = infer_cam.run(infer_config(synth_voc, checkpoint, tmp_path / "one"))
    two = infer_cam.run(infer_config(synth_voc, checkpoint, tmp_path / "two", num_processes=2))
    names = sorted(n for n in os.listdir(one) if n.endswith(".png"))
    assert len(names) == 10 and sorted(n for n in os.listdir(two) if n.endswith(".png")) == names
    for name in names:
        with open(os.path.join(one, name), "rb") as a, open(os.path.join(two, name), "rb") as b:
            assert a.read() == b.read(), name


def test_process_count_follows_the_visible_gpus(monkeypatch):
    from lib.training.distributed import requested_processes
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    paper = load_config(PAPER)
    assert requested_processes(paper) == 4  # the paper's plain command uses every GPU
    assert requested_processes(load_config(PAPER, {"device": "cuda:1"})) == 1
    assert requested_processes(load_config(PAPER, {"num_processes": 2})) == 2
    assert requested_processes(load_config(PAPER, {"device": "cpu"})) == 1


def test_self_spawned_cpu_processes_share_the_cores_they_may_run_on(monkeypatch):
    """A job confined to 6 of 64 cores (taskset, a scheduler's allocation) runs 3 threads in
    each of its 2 processes, not 32."""
    from lib.training.distributed import _share_the_cores
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    threads = torch.get_num_threads()
    try:
        _share_the_cores(DistContext(1, 2, torch.device("cpu")))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)


def test_two_processes_log_the_global_batchs_loss(synth_voc, tmp_path):
    """The logged loss is the whole global batch's, whatever the processes: two processes
    (shares of 3 and 2) log what one process logs from the same weights. fc8 is zero, so the
    dropout masks, which differ between processes, change nothing; fc9 is drawn large, so the
    seed loss differs from image to image."""
    from lib.config import SCHEMA
    from lib.network.checkpoint import save_state_dict
    from lib.optim import build_optimizer

    cfg = load_config(PAPER, {"dataset_root": synth_voc, "pretrain": None, "resize": 33,
                              "batch_size": GLOBAL_BATCH, "num_worker": 0, "width_mult": 0.125,
                              "max_iter": 1})
    model = _model()
    with torch.no_grad():
        model.fc8.weight.zero_()
        torch.nn.init.normal_(model.fc9.weight, std=1.0)
    state = {"model": model.state_dict(), "iteration": 0, "rng": [{"cpu": torch.get_rng_state()}],
             "optimizer": build_optimizer(model, cfg.lr, cfg.weight_decay).state_dict(),
             "config": {k: cfg[k] for k in SCHEMA}}
    save_state_dict(state, str(tmp_path / "start.pth"))
    logged = {}
    for processes in (1, 2):
        cmd = [sys.executable, "tools/stage2/train_sgan.py", "--cfg_file", PAPER,
               f"dataset_root={synth_voc}", "pretrain=", "resize=33", "max_iter=1",
               f"batch_size={GLOBAL_BATCH}", "num_worker=0", "width_mult=0.125",
               f"save_model_path={tmp_path}", f"cfg_name=p{processes}",
               f"num_processes={processes}", f"resume={tmp_path / 'start.pth'}"]
        result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        line = next(s for s in (tmp_path / f"p{processes}" / "train.log").read_text().splitlines()
                    if " iter 1/1 " in s)
        words = line.split(" iter 1/1 ")[1].split()
        logged[processes] = {k: float(v) for k, v in zip(words[0:6:2], words[1:6:2])}
    assert set(logged[1]) == {"loss", "cls", "seed"}
    for term, value in logged[1].items():
        assert logged[2][term] == pytest.approx(value, abs=2e-4), term
