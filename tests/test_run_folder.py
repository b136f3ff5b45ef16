"""A training run's folder through the real scripts: inference rebuilds the network the run
trained, a new run does not overwrite another, overwrite=true keeps the old run until the new
one's first checkpoint, a run's record and log tell the truth, resume says when there is
nothing to do."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, listed_run_files
from lib.config import ConfigError, load_config
from lib.signal_point import ENV as SIGNAL_AT
from lib.stage2 import infer_cam, train_sgan
from lib.stage3 import infer_seg, train_seg
from lib.training.run_folder import SET_ASIDE, SET_ASIDE_NOTE, load_trained_network

PAPER = os.path.join(REPO, "config", "sgan_vgg16_321x321.yml")
SMALL = ["pretrain=", "resize=33", "batch_size=2", "step_size=1"]


def run_tool(script, *args, one_core=False, env=None):
    """A script of tools/ with the paper's config; ``one_core`` pins it (and its children) to
    one core, so that any num_worker above 1 is more than the cores."""
    pin = (lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) if one_core else None
    return subprocess.run([sys.executable, os.path.join("tools", script), "--cfg_file", PAPER,
                           *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, preexec_fn=pin, env=env)


def one_line_error(result, *fragments):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory, synth_voc):
    """A finished two-iteration SGAN run at width 0.125, trained by train_sgan.py on one core
    with num_worker=3; ``common`` are the overrides every later command shares, ``results``
    the inference commands' res_path."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs CPU affinity (Linux)")
    out = tmp_path_factory.mktemp("out")
    common = [f"dataset_root={synth_voc}", f"save_model_path={out / 'model'}", "cfg_name=tiny"]
    result = run_tool("stage2/train_sgan.py", *common, *SMALL, "max_iter=2", "width_mult=0.125",
                      "num_worker=3", one_core=True)
    assert result.returncode == 0, result.stderr
    return {"dir": out / "model" / "tiny", "common": common, "out": out, "stderr": result.stderr,
            "results": f"res_path={out / 'result'}"}


def test_a_finished_run_says_so_last_in_its_log(run):
    log = (run["dir"] / "train.log").read_text().splitlines()
    assert "finished: iteration 2 of 2" in log[-1]


def test_training_caps_num_worker_at_the_cores(run):
    log = (run["dir"] / "train.log").read_text().splitlines()
    assert sum("num_worker 3 -> 1" in line for line in log) == 1
    assert "suggested max number of worker" not in run["stderr"]


def test_inference_builds_the_network_its_run_trained(run):
    # width_mult left out: the run's config.yml gives 0.125
    result = run_tool("stage2/infer_cam.py", *run["common"], run["results"], "resize=33", "max_iter=2",
                      "num_worker=0")
    assert result.returncode == 0, result.stderr
    assert "the network as its run trained it: width_mult 0.125" in result.stderr
    # asking for another network names the key and both values
    asked = run_tool("stage2/infer_cam.py", *run["common"], run["results"], "max_iter=2", "width_mult=0.25")
    one_line_error(asked, "'width_mult' is 0.25", "trained with 0.125", "config.yml")
    # max_iter left at the paper's 8000: the keys that choose the file and what exists
    line = one_line_error(run_tool("stage2/infer_cam.py", *run["common"], run["results"]),
                          "model_iter_8000.pth", "max_iter=8000", "checkpoint=",
                          "model_iter_1.pth, model_iter_2.pth")
    assert "save_model_path" in line and "cfg_name" in line


def test_a_checkpoint_without_its_run_names_the_likely_key(run, tmp_path):
    published = tmp_path / "model_iter_2.pth"  # as downloaded: no config.yml beside it
    shutil.copy(run["dir"] / "model_iter_2.pth", published)
    line = one_line_error(run_tool("stage2/infer_cam.py", *run["common"], run["results"],
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


def _files(folder):
    """{name: bytes} of the files of ``folder`` (not its log, which a new run appends to)."""
    return {n: (folder / n).read_bytes() for n in os.listdir(folder)
            if (folder / n).is_file() and n != "train.log"}


def _new_lines(folder, before):
    """The lines of ``folder``'s log after the text ``before``, without their time stamps."""
    text = (folder / "train.log").read_text()
    assert text.startswith(before)
    return [line.split(" ", 2)[2] for line in text[len(before):].splitlines()]


def test_overwrite_keeps_the_old_run_until_the_new_runs_first_checkpoint(run):
    cmd = [*run["common"], *SMALL, "width_mult=0.25", "num_worker=0", "cfg_name=other"]
    first = run_tool("stage2/train_sgan.py", *cmd, "max_iter=3")
    assert first.returncode == 0, first.stderr
    folder = run["out"] / "model" / "other"
    old = _files(folder)
    assert listed_run_files(folder) == ["config.yml", "metrics.csv", "model_iter_1.pth",
                                        "model_iter_2.pth", "model_iter_3.pth", "train.log",
                                        "train_state.pth"]
    log = (folder / "train.log").read_text()

    # refused when it builds its network (weights of another width): nothing has changed
    misfit = run_tool("stage2/train_sgan.py", *cmd, "max_iter=3", "overwrite=true",
                      f"pretrain={run['dir'] / 'model_iter_2.pth'}")
    one_line_error(misfit, "model_iter_2.pth", "shape differences")
    assert _files(folder) == old and (folder / "train.log").read_text() == log

    # a run that diverges at once, before its first checkpoint: the old run is put back
    failed = run_tool("stage2/train_sgan.py", *cmd, "max_iter=3", "overwrite=true",
                      "init=kaiming", "lr=1e12", "step_size=3")
    assert failed.returncode == 2 and "loss is" in failed.stderr
    assert _files(folder) == old and not (folder / SET_ASIDE).exists()
    lines = _new_lines(folder, log)
    assert lines[0].startswith(SET_ASIDE_NOTE) and lines[-2].startswith("stopped: loss is")
    assert lines[-1].startswith("overwrite=true: this run stopped before its first checkpoint")
    log = (folder / "train.log").read_text()

    # killed after an iteration, before its first checkpoint: the old run is set aside, whole,
    # and the next training in the folder puts it back (here resume: nothing left to do)
    killed = run_tool("stage2/train_sgan.py", *cmd, "max_iter=3", "overwrite=true",
                      "step_size=2", env={**os.environ, SIGNAL_AT: "iteration:1:SIGKILL"})
    assert killed.returncode == -9
    assert listed_run_files(folder) == [SET_ASIDE, "metrics.csv", "train.log"]
    assert _files(folder / SET_ASIDE) == old
    again = run_tool("stage2/train_sgan.py", *cmd, "max_iter=3", "resume=true")
    assert again.returncode == 0, again.stderr
    assert _files(folder) == old and not (folder / SET_ASIDE).exists()
    lines = _new_lines(folder, log)
    assert lines[0].startswith(SET_ASIDE_NOTE) and "put back the run set aside" in lines[-2]
    assert lines[-1].startswith("nothing to do: the run in")

    # Ctrl-C before its first checkpoint (an overwrite=true started by mistake): the old run
    # is back at once, and nothing of the new one is left to resume
    stopped = run_tool("stage2/train_sgan.py", *cmd, "max_iter=3", "overwrite=true",
                       "step_size=2", env={**os.environ, SIGNAL_AT: "iteration:1:SIGINT"})
    assert stopped.returncode == 130
    assert stopped.stderr.strip().splitlines()[-1] == (
        f"interrupted by SIGINT at iteration 1 of 3, before its first checkpoint: "
        f"nothing saved, the run it was to replace is back in {folder}")
    assert _files(folder) == old and not (folder / SET_ASIDE).exists()
    assert _new_lines(folder, log)[-1].startswith(
        "overwrite=true: this run stopped before its first checkpoint")
    log = (folder / "train.log").read_text()

    # a replacement that succeeds: the old run goes with the new run's first checkpoint, and
    # so do its lines of the log
    done = run_tool("stage2/train_sgan.py", *cmd, "max_iter=2", "overwrite=true")
    assert done.returncode == 0, done.stderr
    assert listed_run_files(folder) == ["config.yml", "metrics.csv", "model_iter_1.pth",
                                        "model_iter_2.pth", "train.log", "train_state.pth"]
    assert load_config(str(folder / "config.yml")).max_iter == 2
    lines = [line.split(" ", 2)[2] for line in (folder / "train.log").read_text().splitlines()]
    assert lines[0].startswith(SET_ASIDE_NOTE) and lines[-1].startswith("finished: iteration 2")
    deleted = lines.index("overwrite=true: deleted the run set aside; this run replaces it")
    assert lines[deleted - 1].endswith("model_iter_1.pth")  # right after its first checkpoint


def test_inference_caps_num_worker_and_ends_with_a_summary(run):
    args = [*run["common"], run["results"], "max_iter=2", "num_worker=2", "test_cfg=_summary"]
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


IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
SEG = os.path.join(REPO, "config", "seg_deeplabv2_vgg16.yml")


def _trained_on_imagenet_input(stage, root, out):
    """A one-iteration run of ``stage`` (2 or 3) with ImageNet's input normalisation (mean,
    std: the demo's), He-initialised so that its outputs follow the image; the config that
    infers from it, all else left to the defaults (mean and std among them)."""
    common = {"dataset_root": root, "save_model_path": str(out / "model"), "cfg_name": "run",
              "max_iter": 1, "width_mult": 0.125, "num_worker": 0, "init": "kaiming"}
    if stage == 2:
        train_sgan.run(load_config(None, {**common, **IMAGENET, "pretrain": None,
                                          "resize": 33, "batch_size": 2}))
        return infer_cam.run, {**common, "resize": 33}
    train_seg.run(load_config(None, {**common, **IMAGENET, "seg_pretrain": None,
                                     "seed_dir": os.path.join(root, "ini_seed", "base_30_bg"),
                                     "seg_resize": 41, "crop_size": 33, "batch_size": 2,
                                     "crf_workers": 0}))
    return infer_seg.run, {**common, "test_scales": [33, 41], "seg_crf": False}


@pytest.mark.parametrize("stage", [2, 3])
def test_inference_feeds_the_network_the_input_its_run_trained_on(stage, synth_voc, tmp_path):
    run, infer = _trained_on_imagenet_input(stage, synth_voc, tmp_path)
    outputs = {}
    for name, keys in (("given", IMAGENET), ("left_out", {})):
        folder = run(load_config(None, {**infer, **keys, "res_path": str(tmp_path / name)}))
        outputs[name] = {n: open(os.path.join(folder, n), "rb").read()
                         for n in sorted(os.listdir(folder))}
    assert outputs["given"] and outputs["left_out"] == outputs["given"]
    log = open(folder + ".log").read()
    assert f"the network as its run trained it: mean {IMAGENET['mean']!r}, std " in log
    # the stage's published config says caffe's input: one line naming both values
    published = PAPER if stage == 2 else SEG
    with pytest.raises(ConfigError) as error:
        run(load_config(published, {**infer, "res_path": str(tmp_path / "published")}))
    line = str(error.value)
    assert "\n" not in line and "'mean' is [104.008, 116.669, 122.675]" in line
    assert "trained with [0.485, 0.456, 0.406] (std too)" in line
