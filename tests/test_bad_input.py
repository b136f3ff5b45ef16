"""Bad input and interrupted work: one clear line, a non-zero exit, nothing half-written."""
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, listed_run_files
from lib.dataset.check import check_files
from lib.dataset.tags import load_tags
from lib.errors import UserError
from lib.network.checkpoint import save_state_dict
from lib.network.sgan import SGAN
from lib.tooling.synthetic import generate_dataset
from lib.voc import VOC_PALETTE

PAPER = os.path.join(REPO, "config", "sgan_vgg16_321x321.yml")


@pytest.fixture
def voc(tmp_path):
    """A fresh synthetic tree of 6 training images (and one held out) each test may damage."""
    root = tmp_path / "voc"
    generate_dataset(str(root), num_images=7, min_size=33, max_size=65, seed=5)
    return root


def _paths(root):
    """The training images' names (the tags file's) and their files."""
    names = sorted(load_tags(root / "im_tags.pkl"))
    image = lambda n: str(root / "JPEGImages" / (n + ".jpg"))  # noqa: E731
    maps = {"saliency map": lambda n: str(root / "sal" / "sal_snet" / (n + ".png")),
            "seed map": lambda n: str(root / "ini_seed" / "base_30_bg" / (n + ".png"))}
    return names, image, maps


def _one_line(stderr):
    return stderr.strip().count("\n") == 0 and "Traceback" not in stderr


def run_tool(*args):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)


def test_check_passes_on_a_good_tree(voc):
    names, image, maps = _paths(voc)
    check_files(names, image, maps)


def test_missing_files_are_counted_and_listed_together(voc):
    names, image, maps = _paths(voc)
    for name in names[:4]:
        os.remove(maps["saliency map"](name))
    os.remove(image(names[5]))
    with pytest.raises(UserError) as err:
        check_files(names, image, maps)
    message = str(err.value)
    assert "1 image missing" in message and names[5] in message
    assert "4 saliency maps missing" in message and ", ..." in message


def test_truncated_image_and_wrong_size_map_are_named(voc):
    names, image, maps = _paths(voc)
    data = open(image(names[0]), "rb").read()
    with open(image(names[0]), "wb") as f:
        f.write(data[: len(data) // 2])
    seed = maps["seed map"](names[1])
    shutil.copy(maps["seed map"](names[2]), seed)
    with pytest.raises(UserError) as err:
        check_files(names, image, maps)
    message = str(err.value)
    assert f"{image(names[0])}: truncated" in message
    assert f"{seed}: seed map is" in message and "but its image is" in message



@pytest.mark.parametrize("mode, described", [("P", "palette"), ("RGB", "colour")])
def test_a_palette_or_colour_map_is_named_instead_of_read_as_luminance(voc, mode, described):
    names, image, maps = _paths(voc)
    seed = maps["seed map"](names[2])
    with Image.open(seed) as grey:
        labels = np.asarray(grey)
    converted = Image.fromarray(labels, mode="L").convert(mode)
    if mode == "P":
        converted = Image.fromarray(labels, mode="P")
        converted.putpalette(VOC_PALETTE.ravel().tolist())
    converted.save(seed)
    with pytest.raises(UserError) as err:
        check_files(names, image, maps)
    assert f"{seed}: seed map must be an 8-bit grey PNG, got mode {mode} ({described})" in \
        str(err.value)
    check_files(names, image, maps, grey=False)  # label maps read as indices may be palettes


GOLDEN_PRED = os.path.join(REPO, "tests", "data", "golden_pred")
GOLDEN_GT = os.path.join(REPO, "tests", "data", "golden_voc", "SegmentationClassAug")


def test_eval_strict_requires_every_listed_prediction(tmp_path):
    res = tmp_path / "res"
    shutil.copytree(GOLDEN_PRED, res)
    os.remove(res / "2099_000002.png")
    names = tmp_path / "list.txt"
    names.write_text("".join(f"{n[:-4]}\n" for n in sorted(os.listdir(GOLDEN_PRED))))
    args = ("tools/eval_mIoU.py", "--res_path", str(res), "--gt_path", GOLDEN_GT,
            "--list", str(names))
    strict = run_tool(*args)
    assert strict.returncode == 2 and _one_line(strict.stderr)
    assert "1 of 4 predictions missing" in strict.stderr and "2099_000002.png" in strict.stderr
    lenient = run_tool(*args, "--no-strict")
    assert lenient.returncode == 0 and "3 images, 22 classes" in lenient.stdout


@pytest.mark.parametrize("override, key", [
    ("camthresh=0.3", "camthresh"), ("max_iter=ten", "max_iter"), ("cam_thresh=1.5", "cam_thresh"),
    ("batch_size=0", "batch_size"), ("num_classes=20", "num_classes"),
])
def test_config_errors_through_the_cli_name_the_key(override, key):
    result = run_tool("tools/stage2/infer_cam.py", "--cfg_file", PAPER, override)
    assert result.returncode == 2 and _one_line(result.stderr)
    assert f"'{key}'" in result.stderr


@pytest.mark.parametrize("override, words", [
    ("device=gpu", ["'device'", "auto, cpu, cuda or cuda:N", "got 'gpu'"]),
    ("max_itr=3", ["unknown config key 'max_itr'", "did you mean 'max_iter'"]),
])
def test_a_bad_device_or_a_misspelt_key_says_what_is_valid(override, words):
    result = run_tool("tools/stage2/train_sgan.py", "--cfg_file", PAPER, override)
    assert result.returncode == 2 and _one_line(result.stderr)
    assert all(word in result.stderr for word in words), result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_device_cuda_without_a_gpu_is_one_line(voc, tmp_path):
    result = run_tool("tools/stage2/train_sgan.py", "--cfg_file", PAPER, f"dataset_root={voc}",
                      "pretrain=", f"save_model_path={tmp_path}", "device=cuda")
    assert result.returncode == 2 and _one_line(result.stderr)
    assert "'device' is 'cuda'" in result.stderr and "no CUDA device" in result.stderr
    assert "device=cpu" in result.stderr


def test_missing_dataset_root_and_tags_file_name_the_key(voc, tmp_path):
    result = run_tool("tools/stage2/infer_cam.py", "--cfg_file", PAPER,
                      f"dataset_root={tmp_path / 'nowhere'}")
    assert result.returncode == 2 and "'dataset_root'" in result.stderr
    result = run_tool("tools/stage2/infer_cam.py", "--cfg_file", PAPER, f"dataset_root={voc}",
                      "cue_file=tags.json")
    assert result.returncode == 2 and "'cue_file'" in result.stderr and _one_line(result.stderr)


def test_unsafe_tags_pickle_is_refused_through_the_cli(voc, tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (voc / "im_tags.pkl").write_bytes(pickle.dumps({"x": Evil()}, protocol=2))
    checkpoint = tmp_path / "m.pth"
    save_state_dict(SGAN(width_mult=0.125).state_dict(), str(checkpoint))
    result = run_tool("tools/stage2/infer_cam.py", "--cfg_file", PAPER, f"dataset_root={voc}",
                      f"checkpoint={checkpoint}", "width_mult=0.125",
                      f"res_path={tmp_path / 'out'}")
    assert result.returncode == 2 and _one_line(result.stderr) and "refusing" in result.stderr
    assert not (tmp_path / "pwned").exists()


def test_checkpoint_mismatch_lists_keys_and_writes_nothing(voc, tmp_path):
    checkpoint = tmp_path / "m.pth"
    state = SGAN(width_mult=0.125).state_dict()
    del state["fc9.bias"]
    state["extra.weight"] = torch.zeros(1)
    save_state_dict(state, str(checkpoint))
    result = run_tool("tools/stage2/infer_cam.py", "--cfg_file", PAPER, f"dataset_root={voc}",
                      f"checkpoint={checkpoint}", "width_mult=0.25", f"res_path={tmp_path / 'out'}")
    assert result.returncode == 2 and _one_line(result.stderr)
    for part in ("missing keys: fc9.bias", "unexpected keys: extra.weight", "shape differences"):
        assert part in result.stderr
    assert not (tmp_path / "out").exists()


def test_inference_stops_on_a_missing_saliency_map_before_writing(voc, tmp_path):
    checkpoint = tmp_path / "m.pth"
    save_state_dict(SGAN(width_mult=0.125).state_dict(), str(checkpoint))
    victim = sorted(os.listdir(voc / "sal" / "sal_snet"))[2]
    os.remove(voc / "sal" / "sal_snet" / victim)
    result = run_tool("tools/stage2/infer_cam.py", "--cfg_file", PAPER, f"dataset_root={voc}",
                      f"checkpoint={checkpoint}", "width_mult=0.125",
                      f"res_path={tmp_path / 'out'}")
    assert result.returncode == 2 and _one_line(result.stderr)
    assert "1 saliency map missing" in result.stderr and victim in result.stderr
    assert not (tmp_path / "out").exists()


def _signalled_at(point, count, signal_name):
    """The environment that makes a job send itself a signal the count-th time it passes a
    point of lib.signal_point: an interruption at a known moment, not after a guessed delay."""
    from lib.signal_point import ENV
    return {**os.environ, ENV: f"{point}:{count}:{signal_name}"}


def test_killed_inference_leaves_whole_files_and_a_rerun_finishes(voc, tmp_path):
    from PIL import Image
    names, _, _ = _paths(voc)
    checkpoint = tmp_path / "m.pth"
    save_state_dict(SGAN(width_mult=0.125).state_dict(), str(checkpoint))
    out = tmp_path / "out" / "sgan_vgg16_321x321_snet_seedcam_0.25"
    args = ["tools/stage2/infer_cam.py", "--cfg_file", PAPER, f"dataset_root={voc}",
            f"checkpoint={checkpoint}", "width_mult=0.125", f"res_path={tmp_path / 'out'}",
            "num_worker=0", "resize=65"]
    # killed with the 4th seed PNG written to its temporary file but not yet renamed (the
    # folder's record, beside it, is the first file written)
    killed = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, check=False,
                            env=_signalled_at("atomic_write", 5, "SIGKILL"))
    assert killed.returncode == -signal.SIGKILL
    done = sorted(f for f in os.listdir(out) if f.endswith(".png") and not f.startswith("."))
    assert done == [n + ".png" for n in names[:3]]
    assert [f.startswith(".tmp-") for f in os.listdir(out)].count(True) == 1
    for f in done:
        Image.open(out / f).load()  # every visible file is complete
    rerun = run_tool(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert "3 already there" in rerun.stderr
    # the folder holds whole PNGs only, as the published evaluator's loop opens every entry
    assert sorted(os.listdir(out)) == [n + ".png" for n in names]
    for f in os.listdir(out):
        Image.open(out / f).load()


def test_sigterm_during_inference_ends_its_log_with_what_it_wrote(voc, tmp_path):
    """A scheduler's SIGTERM ended inference at once (exit status -15), without the log's
    summary line that Ctrl-C gave."""
    names, _, _ = _paths(voc)
    checkpoint = tmp_path / "m.pth"
    save_state_dict(SGAN(width_mult=0.125).state_dict(), str(checkpoint))
    out = tmp_path / "out" / "sgan_vgg16_321x321_snet_seedcam_0.25"
    # the signal with the 4th seed PNG in its temporary file (after the folder's record)
    stopped = subprocess.run([sys.executable, "tools/stage2/infer_cam.py", "--cfg_file", PAPER,
                              f"dataset_root={voc}", f"checkpoint={checkpoint}", "width_mult=0.125",
                              f"res_path={tmp_path / 'out'}", "num_worker=0", "resize=65"],
                             cwd=REPO, capture_output=True, text=True,
                             env=_signalled_at("atomic_write", 5, "SIGTERM"))
    assert stopped.returncode == 143, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == "interrupted by SIGTERM"
    last = (tmp_path / "out" / f"{out.name}.log").read_text().splitlines()[-1]
    assert last.split(" ", 2)[2].startswith("interrupted in ")
    assert last.endswith(f": 3 images written, 0 skipped (already there), 3 failed, in {out}; "
                         "a rerun makes the rest")
    assert sorted(os.listdir(out)) == [n + ".png" for n in names[:3]]  # no temporary file


def test_ctrl_c_or_sigterm_saves_the_run_where_it_stopped_and_says_how_to_resume(voc, tmp_path):
    import shlex

    from lib.network.checkpoint import load_file, read_state_dict
    overrides = [f"dataset_root={voc}", "pretrain=", "resize=33", "max_iter=4", "step_size=2",
                 "batch_size=2", "num_worker=0", "width_mult=0.125", f"save_model_path={tmp_path}"]
    train = [sys.executable, "tools/stage2/train_sgan.py", "--cfg_file", PAPER, *overrides]
    straight = subprocess.run([*train, "cfg_name=straight"], cwd=REPO, capture_output=True,
                              text=True)
    assert straight.returncode == 0, straight.stderr
    reference = read_state_dict(str(tmp_path / "straight" / "model_iter_4.pth"))
    for signal_name, status in (("SIGINT", 130), ("SIGTERM", 143)):
        # the signal right after iteration 3, between the checkpoints of iterations 2 and 4
        job = subprocess.run([*train, f"cfg_name={signal_name}"], cwd=REPO, capture_output=True,
                             text=True, env=_signalled_at("iteration", 3, signal_name))
        assert job.returncode == status, job.stderr
        assert "Traceback" not in job.stderr
        run_dir = tmp_path / signal_name
        last = job.stderr.strip().splitlines()[-1]
        assert last == (f"interrupted by {signal_name} at iteration 3 of 4, saved in "
                        f"{run_dir / 'train_state.pth'}: resume with: {last.split(': ', 2)[2]}")
        assert (run_dir / "train.log").read_text().splitlines()[-1].endswith(" " + last)
        assert listed_run_files(run_dir) == ["config.yml", "metrics.csv", "model_iter_2.pth",
                                             "train.log", "train_state.pth"]  # no model_iter_3
        assert load_file(str(run_dir / "train_state.pth"))["iteration"] == 3
        command = shlex.split(last.split("resume with: ", 1)[1])
        assert command == [sys.executable, *train[1:], f"cfg_name={signal_name}", "resume=true"]
        resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr
        assert "at iteration 3" in (run_dir / "train.log").read_text()
        weights = read_state_dict(str(run_dir / "model_iter_4.pth"))
        for key, value in reference.items():  # as if never interrupted, bit for bit
            assert torch.equal(weights[key], value), (signal_name, key)


def test_a_diverging_loss_stops_training_and_keeps_the_last_good_checkpoint(voc, tmp_path):
    result = run_tool("tools/stage2/train_sgan.py", "--cfg_file", PAPER, f"dataset_root={voc}",
                      "pretrain=", "resize=33", "max_iter=30", "step_size=1", "batch_size=2",
                      "num_worker=0", "width_mult=0.125", "init=kaiming", "lr=1e12",
                      f"save_model_path={tmp_path}")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: loss is") and "at iteration" in last
    failed_at = int(last.split("at iteration ")[1].split(";")[0])
    run_dir = tmp_path / "sgan_vgg16_321x321_snet"
    log = (run_dir / "train.log").read_text().splitlines()
    assert log[-1].split(" ", 2)[2] == "stopped: " + last.removeprefix("error: ")
    saved = sorted(int(f[11:-4]) for f in os.listdir(run_dir) if f.startswith("model_iter_"))
    assert saved == list(range(1, failed_at))
    from lib.network.checkpoint import read_state_dict
    if saved:
        state = read_state_dict(str(run_dir / f"model_iter_{saved[-1]}.pth"))
        assert all(torch.isfinite(v).all() for v in state.values())


def test_training_stops_on_bad_files_before_writing_anything(voc, tmp_path):
    names, image, maps = _paths(voc)
    os.remove(maps["seed map"](names[3]))
    with open(image(names[1]), "wb") as f:
        f.write(b"not a jpeg")
    result = run_tool("tools/stage2/train_sgan.py", "--cfg_file", PAPER, f"dataset_root={voc}",
                      "pretrain=", f"save_model_path={tmp_path / 'model'}")
    assert result.returncode == 2 and _one_line(result.stderr)
    assert "1 seed map missing" in result.stderr and names[3] in result.stderr
    assert not (tmp_path / "model").exists()
    shutil.copy(maps["seed map"](names[2]), maps["seed map"](names[3]))
    result = run_tool("tools/stage2/train_sgan.py", "--cfg_file", PAPER, f"dataset_root={voc}",
                      "pretrain=", f"save_model_path={tmp_path / 'model'}")
    assert result.returncode == 2 and _one_line(result.stderr)
    assert f"{image(names[1])}: unreadable" in result.stderr
    os.remove(image(names[1]))  # a name in the tags file with no image
    result = run_tool("tools/stage2/train_sgan.py", "--cfg_file", PAPER, f"dataset_root={voc}",
                      "pretrain=", f"save_model_path={tmp_path / 'model'}")
    assert result.returncode == 2 and "1 image missing" in result.stderr
    assert image(names[1]) in result.stderr


@pytest.mark.parametrize("content, words", [
    ('{"2099_000000": [3, 25]}', "must be classes in 1..20"),
    ('{"2099_000000": []}', "must be classes in 1..20"),
    ('{"2099_000000": [3], "no_such_image": [4]}', "1 image missing"),
])
def test_bad_tags_are_one_line_errors_naming_the_file(voc, tmp_path, content, words):
    (voc / "tags.json").write_text(content)
    result = run_tool("tools/stage2/train_sgan.py", "--cfg_file", PAPER, f"dataset_root={voc}",
                      "cue_file=tags.json", "pretrain=", f"save_model_path={tmp_path / 'model'}")
    assert result.returncode == 2 and _one_line(result.stderr)
    assert words in result.stderr
    assert "tags.json" in result.stderr or "no_such_image" in result.stderr


def test_an_error_from_a_loader_worker_is_one_line(voc, tmp_path):
    from torch.utils.data import DataLoader

    from lib.cli import error_line
    from lib.dataset.voc12_sgan import VOC12ClsSalDataset
    dataset = VOC12ClsSalDataset(str(voc), "im_tags.pkl", new_size=33)
    os.remove(dataset.seed_path(dataset.names[0]))
    with pytest.raises(FileNotFoundError) as err:
        next(iter(DataLoader(dataset, batch_size=2, num_workers=1)))
    assert "\n" in str(err.value)  # the worker's traceback
    assert error_line(err.value) == f"cannot read map {dataset.seed_path(dataset.names[0])}"


def test_checkpoints_reach_the_disk_before_their_rename(tmp_path, monkeypatch):
    import stat

    from lib.image import write_png
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        info = os.fstat(fd)
        events.append(("fsync folder",) if stat.S_ISDIR(info.st_mode) else ("fsync", info.st_size))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.getsize(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_state_dict({"w": torch.zeros(100)}, str(tmp_path / "model_iter_2.pth"))
    size = os.path.getsize(tmp_path / "model_iter_2.pth")
    assert events == [("fsync", size), ("replace", size), ("fsync folder",)]  # flushed, synced
    events.clear()
    write_png(str(tmp_path / "seed.png"), np.zeros((4, 4), np.uint8))
    assert [e[0] for e in events] == ["replace"]  # PNG outputs stay fast
