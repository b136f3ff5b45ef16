"""A training run's folder through the real scripts: inference rebuilds the network the run
trained, a new run does not overwrite another, a run's record and log tell the truth, resume
says when there is nothing to do."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, listed_run_files
from lib.config import load_config
from lib.training.run_folder import load_trained_network

PAPER = os.path.join(REPO, "config", "sgan_vgg16_321x321.yml")
SMALL = ["pretrain=", "resize=33", "batch_size=2", "step_size=1"]


def run_tool(script, *args, one_core=False):
    """A script of tools/ with the paper's config; ``one_core`` pins it (and its children) to
    one core, so that any num_worker above 1 is more than the cores."""
    pin = (lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) if one_core else None
    return subprocess.run([sys.executable, os.path.join("tools", script), "--cfg_file", PAPER,
                           *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, preexec_fn=pin)


def one_line_error(result, *fragments):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory, synth_voc):
    """A finished two-iteration SGAN run at width 0.125, trained by train_sgan.py on one core
    with num_worker=3; ``common`` are the overrides every later command shares."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs CPU affinity (Linux)")
    out = tmp_path_factory.mktemp("out")
    common = [f"dataset_root={synth_voc}", f"save_model_path={out / 'model'}",
              f"res_path={out / 'result'}", "cfg_name=tiny"]
    result = run_tool("stage2/train_sgan.py", *common, *SMALL, "max_iter=2", "width_mult=0.125",
                      "num_worker=3", one_core=True)
    assert result.returncode == 0, result.stderr
    return {"dir": out / "model" / "tiny", "common": common, "out": out, "stderr": result.stderr}


def test_a_finished_run_says_so_last_in_its_log(run):
    log = (run["dir"] / "train.log").read_text().splitlines()
    assert "finished: iteration 2 of 2" in log[-1]


def test_training_caps_num_worker_at_the_cores(run):
    log = (run["dir"] / "train.log").read_text().splitlines()
    assert sum("num_worker 3 -> 1" in line for line in log) == 1
    assert "suggested max number of worker" not in run["stderr"]


def test_inference_builds_the_network_its_run_trained(run):
    # width_mult left out: the run's config.yml gives 0.125
    result = run_tool("stage2/infer_cam.py", *run["common"], "resize=33", "max_iter=2",
                      "num_worker=0")
    assert result.returncode == 0, result.stderr
    assert "the network as its run trained it: width_mult 0.125" in result.stderr
    # asking for another network names the key and both values
    asked = run_tool("stage2/infer_cam.py", *run["common"], "max_iter=2", "width_mult=0.25")
    one_line_error(asked, "'width_mult' is 0.25", "trained with 0.125", "config.yml")
    # max_iter left at the paper's 8000: the keys that choose the file and what exists
    line = one_line_error(run_tool("stage2/infer_cam.py", *run["common"]),
                          "model_iter_8000.pth", "max_iter=8000", "checkpoint=",
                          "model_iter_1.pth, model_iter_2.pth")
    assert "save_model_path" in line and "cfg_name" in line


def test_a_checkpoint_without_its_run_names_the_likely_key(run, tmp_path):
    published = tmp_path / "model_iter_2.pth"  # as downloaded: no config.yml beside it
    shutil.copy(run["dir"] / "model_iter_2.pth", published)
    line = one_line_error(run_tool("stage2/infer_cam.py", *run["common"],
                                   f"checkpoint={published}"),
                          "does not fit", "shape differences", "width_mult=1.0")
    assert len(line) < 600  # not the shapes of all 34 tensors


def test_the_network_keys_of_stage3_come_from_its_run(tmp_path):
    (tmp_path / "model_iter_4.pth").write_bytes(b"")
    (tmp_path / "config.yml").write_text("seg_backbone: resnet101\n")
    cfg = load_config(PAPER, {"checkpoint": str(tmp_path / "model_iter_4.pth"),
                              "seg_backbone": "vgg16"})
    with pytest.raises(Exception, match="'seg_backbone' is 'vgg16' but .* 'resnet101'"):
        load_trained_network(cfg, ("seg_backbone",), lambda c: None)


def test_a_new_run_refuses_a_folder_that_holds_another_run(run):
    before = {n: (run["dir"] / n).read_bytes() for n in os.listdir(run["dir"])}
    refused = run_tool("stage2/train_sgan.py", *run["common"], *SMALL, "max_iter=2",
                       "width_mult=0.125", "num_worker=0")
    one_line_error(refused, "holds another run", "resume=true", "overwrite=true", "cfg_name")
    assert before == {n: (run["dir"] / n).read_bytes() for n in os.listdir(run["dir"])}


def test_resume_of_a_finished_run_has_nothing_to_do(run):
    done = run_tool("stage2/train_sgan.py", *run["common"], *SMALL, "max_iter=2",
                    "width_mult=0.125", "num_worker=0", "resume=true")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing to do" in lines[0] and "iteration 2" in lines[0]
    below = run_tool("stage2/train_sgan.py", *run["common"], *SMALL, "max_iter=1",
                     "width_mult=0.125", "num_worker=0", "resume=true")
    one_line_error(below, "'max_iter' is 1", "below iteration 2")


def test_overwrite_replaces_the_run_and_a_failed_run_records_only_its_checkpoints(run):
    cmd = [*run["common"], *SMALL, "width_mult=0.25", "num_worker=0", "cfg_name=other"]
    first = run_tool("stage2/train_sgan.py", *cmd, "max_iter=3")
    assert first.returncode == 0, first.stderr
    folder = run["out"] / "model" / "other"
    # overwrite=true: a run that diverges at once replaces the folder's run, and leaves
    # neither checkpoints nor a record it did not make
    failed = run_tool("stage2/train_sgan.py", *cmd, "max_iter=3", "overwrite=true",
                      "init=kaiming", "lr=1e12", "step_size=3")
    assert failed.returncode == 2 and "loss is" in failed.stderr
    assert listed_run_files(folder) == ["metrics.csv", "train.log"]
    log = (folder / "train.log").read_text().splitlines()
    assert "overwrite=true: removed the run" in log[0]
    assert log[-1].split(" ", 2)[2].startswith("stopped: loss is")


def test_inference_caps_num_worker_and_ends_with_a_summary(run):
    args = [*run["common"], "max_iter=2", "num_worker=2", "test_cfg=_summary"]
    first = run_tool("stage2/infer_cam.py", *args, one_core=True)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("num_worker 2 -> 1") == 1
    assert "suggested max number of worker" not in first.stderr
    folder = run["out"] / "result" / "tiny_summary"
    last = first.stderr.strip().splitlines()[-1]
    assert "done in" in last and "10 images written, 0 skipped" in last and "0 failed" in last
    assert str(folder) in last  # 10: the training images of the tree
    assert last.split(" ", 2)[2] in (run["out"] / "result" / "tiny_summary.log").read_text()
    again = run_tool("stage2/infer_cam.py", *args, "save_pictures=true")
    assert again.returncode == 0, again.stderr
    last = again.stderr.strip().splitlines()[-1]
    assert "10 images written, 0 skipped" in last and f"{folder}_pictures" in last
    again = run_tool("stage2/infer_cam.py", *args, "save_pictures=true")
    assert "0 images written, 10 skipped (already there)" in again.stderr
