"""metrics.csv and TensorBoard events of every training run; validation while stage 3 trains."""
import csv
import os
import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from lib.config import load_config
from lib.network.checkpoint import read_state_dict
from lib.training.metrics import METRICS_NAME, RunMetrics, metric_columns, read_metrics
from lib.training.runtime import setup_logger

PAPER = os.path.join(REPO, "config", "sgan_vgg16_321x321.yml")
SEG = os.path.join(REPO, "config", "seg_deeplabv2_vgg16.yml")


def _sgan_cfg(root, out, **extra):
    overrides = {"dataset_root": root, "pretrain": None, "resize": 33, "batch_size": 3,
                 "num_worker": 0, "save_model_path": str(out), "width_mult": 0.125,
                 "cfg_name": "run", "display_step": 1, **extra}
    return load_config(PAPER, overrides)


def _header(path):
    with open(path, newline="") as f:
        return next(csv.reader(f))


class _Killed(Exception):
    """Stands for a kill after an iteration that no checkpoint holds."""


def test_sgan_writes_a_row_per_display_step_and_a_resume_appends_without_duplicates(
        synth_voc, tmp_path, monkeypatch):
    from lib.stage2 import train_sgan
    from lib.training import loop

    passes = []

    def die_after_third_iteration(point):
        passes.append(point)
        if passes.count("iteration") == 3:
            raise _Killed

    monkeypatch.setattr(loop.signal_point, "reach", die_after_third_iteration)
    cfg = _sgan_cfg(synth_voc, tmp_path, max_iter=4, step_size=2)
    with pytest.raises(_Killed):
        train_sgan.run(cfg)
    path = tmp_path / "run" / METRICS_NAME
    assert [row["iteration"] for row in read_metrics(path)] == [1, 2, 3]  # 3: no checkpoint

    monkeypatch.undo()
    train_sgan.run(_sgan_cfg(synth_voc, tmp_path, max_iter=4, step_size=2, resume=True))
    assert _header(path) == ["iteration", "lr", "loss", "cls", "seed", "samples_per_s",
                             "peak_gpu_mem_mib"]
    rows = read_metrics(path)
    assert [row["iteration"] for row in rows] == [1, 2, 3, 4]  # 3 again, once
    log = (tmp_path / "run" / "train.log").read_text()
    for row in rows:  # the log's numbers, each term by name, the poly lr
        assert f"iter {int(row['iteration'])}/4 loss {row['loss']:.4f} cls {row['cls']:.4f}" in log
        assert row["lr"] == pytest.approx(0.001 * (1 - (row["iteration"] - 1) / 4) ** 0.9)
        assert row["samples_per_s"] > 0 and "peak_gpu_mem_mib" not in row  # no GPU here


def test_rows_after_the_resumed_iteration_are_dropped_and_new_columns_are_empty(tmp_path):
    logger = setup_logger("test.metrics")
    with RunMetrics(str(tmp_path), ["iteration", "lr", "loss"], 0, True, logger) as metrics:
        for i in range(1, 6):
            metrics.write(i, {"lr": 0.1, "loss": 1.0 / i})
    columns = metric_columns(["loss"], validates=True)
    with RunMetrics(str(tmp_path), columns, 3, True, logger) as metrics:
        metrics.write(4, {"lr": 0.1, "loss": 0.5, "val_mIoU": 0.25})
    assert _header(tmp_path / METRICS_NAME) == columns
    rows = read_metrics(tmp_path / METRICS_NAME)
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    assert "val_mIoU" not in rows[0] and rows[3]["val_mIoU"] == 0.25
    with pytest.raises(ValueError, match="not a column"):
        RunMetrics(str(tmp_path), columns, 4, True, logger).write(5, {"accuracy": 1.0})


def test_a_resume_keeps_the_earlier_columns_and_drops_rows_a_crash_cut_short(tmp_path):
    """A run that validated, resumed with val_every=0: its val_mIoU rows stay. A line cut
    short by a crash (``3`` of ``30,...``) and a row without an iteration are dropped."""
    logger = setup_logger("test.metrics_resume")
    validating = metric_columns(["loss"], validates=True)
    with RunMetrics(str(tmp_path), validating, 0, True, logger) as metrics:
        for i in (1, 2):
            metrics.write(i, {"lr": 0.1, "loss": 1.0 / i, "val_mIoU": 0.2 * i})
    with open(tmp_path / METRICS_NAME, "a") as f:
        f.write(",0.1,0.5,,,\n3")
    with RunMetrics(str(tmp_path), metric_columns(["loss"]), 10, True, logger) as metrics:
        metrics.write(11, {"lr": 0.1, "loss": 0.25})
    assert _header(tmp_path / METRICS_NAME) == validating
    rows = read_metrics(tmp_path / METRICS_NAME)
    assert [r["iteration"] for r in rows] == [1, 2, 11]
    assert [r.get("val_mIoU") for r in rows] == [0.2, 0.4, None]


def test_samples_per_s_counts_training_time_only():
    """Validation or a checkpoint between two readings (paused) is not training time: 2
    iterations of 1 s around a 5 s pause are 1 sample/s at batch 1, not 2 (the time since the
    pause alone) nor 2/7."""
    from lib.training.metrics import Throughput

    now = [0.0]
    throughput = Throughput(torch.device("cpu"), lambda: now[0])
    now[0] += 1
    throughput.count()
    with throughput.paused():
        now[0] += 5
    now[0] += 1
    throughput.count()
    assert throughput.reading(1)["samples_per_s"] == 1.0
    now[0] += 2
    throughput.count()
    assert throughput.reading(1)["samples_per_s"] == 0.5  # the next reading starts anew


def test_other_processes_write_nothing(tmp_path):
    metrics = RunMetrics(str(tmp_path), ["iteration", "loss"], 0, False, setup_logger("t"))
    metrics.write(1, {"loss": 1.0})
    metrics.close()
    assert os.listdir(tmp_path) == []


def test_without_tensorboard_the_log_says_so_once_and_the_csv_is_written(tmp_path, monkeypatch,
                                                                         caplog):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    logger = setup_logger("test.no_tb", str(tmp_path / "train.log"))
    with RunMetrics(str(tmp_path), ["iteration", "loss"], 0, True, logger) as metrics:
        metrics.write(1, {"loss": 2.0})
    log = (tmp_path / "train.log").read_text()
    assert log.count("tensorboard is not installed") == 1
    assert read_metrics(tmp_path / METRICS_NAME) == [{"iteration": 1.0, "loss": 2.0}]
    assert not [f for f in os.listdir(tmp_path) if f.startswith("events.out.tfevents")]


def test_tensorboard_events_hold_the_csv_values(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with RunMetrics(str(tmp_path), ["iteration", "lr", "loss"], 0, True,
                    setup_logger("t")) as metrics:
        for i in (1, 2, 3):
            metrics.write(i, {"lr": 0.01, "loss": 1.0 / i})
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("loss")] == \
        [(1, 1.0), (2, 0.5), (3, round(1 / 3, 6))]


def _seg_cfg(root, out, **extra):
    overrides = {"dataset_root": root, "seed_dir": os.path.join(root, "ini_seed", "base_30_bg"),
                 "seg_pretrain": None, "init": "kaiming", "width_mult": 0.125, "seg_resize": 41,
                 "crop_size": 33, "batch_size": 2, "num_worker": 0, "display_step": 2,
                 "test_scales": [25, 33, 41], "max_iter": 4, "step_size": 4, "crf_workers": 0,
                 "save_model_path": str(out), "cfg_name": "seg", **extra}
    return load_config(SEG, overrides)


def test_validation_scores_while_training_without_changing_the_weights(synth_voc, tmp_path):
    from lib.stage3 import train_seg

    train_seg.run(_seg_cfg(synth_voc, tmp_path / "plain"))
    train_seg.run(_seg_cfg(synth_voc, tmp_path / "val", val_every=3, val_max_images=3,
                           split="train"))
    plain = read_state_dict(str(tmp_path / "plain" / "seg" / "model_iter_4.pth"))
    validated = read_state_dict(str(tmp_path / "val" / "seg" / "model_iter_4.pth"))
    for key in plain:
        assert torch.equal(plain[key], validated[key]), key

    run_dir = tmp_path / "val" / "seg"
    rows = read_metrics(run_dir / METRICS_NAME)
    assert [r["iteration"] for r in rows] == [2, 3, 4]  # display 2, 4; validation 3, 4
    assert "val_mIoU" not in rows[0] and "loss" not in rows[1]
    assert all(0 <= r["val_mIoU"] <= 1 for r in rows[1:]) and "loss" in rows[2]
    log = (run_dir / "train.log").read_text()
    assert log.count("val mIoU") == 2 and "on 3 images (side 33, no CRF)" in log
    assert f"val mIoU {100 * rows[2]['val_mIoU']:.2f}" in log
    assert "val_mIoU" not in _header(tmp_path / "plain" / "seg" / METRICS_NAME)


def test_validation_score_is_the_evaluators_on_the_single_scale_labels(synth_voc, tmp_path):
    """The score validation logs is the evaluator's mIoU of infer_seg's labels at that one
    scale without the CRF."""
    from lib.evaluation.folder import evaluate_folder
    from lib.stage3 import infer_seg, train_seg
    from lib.stage3.validation import validation_names

    cfg = _seg_cfg(synth_voc, tmp_path, val_every=4, split="train", val_max_images=4)
    train_seg.run(cfg)
    logged = read_metrics(tmp_path / "seg" / METRICS_NAME)[-1]["val_mIoU"]
    labels = infer_seg.run(load_config(None, {**{k: cfg[k] for k in cfg if k in _keys()},
                                              "test_scales": [33], "seg_crf": False,
                                              "res_path": str(tmp_path / "res")}))
    names = validation_names(cfg)
    scores = evaluate_folder(labels, os.path.join(synth_voc, "SegmentationClass"), 21,
                             names=names, progress=False)
    assert np.isclose(logged, scores["mIoU"], atol=1e-6)


def test_validation_refuses_a_missing_image_or_ground_truth_at_the_start(synth_voc, tmp_path):
    import shutil

    from lib.errors import UserError
    from lib.stage3.validation import Validation

    root = tmp_path / "voc"
    shutil.copytree(synth_voc, root)
    names = (root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    (root / "JPEGImages" / f"{names[1]}.jpg").unlink()
    with pytest.raises(UserError, match=f"1 image missing: .*{names[1]}.jpg.*val_every=0"):
        Validation(_seg_cfg(str(root), tmp_path, val_every=2, split="train"))
    shutil.copy(os.path.join(synth_voc, "JPEGImages", f"{names[1]}.jpg"), root / "JPEGImages")
    (root / "SegmentationClass" / f"{names[2]}.png").unlink()
    with pytest.raises(UserError, match=f"1 ground truth missing: .*{names[2]}.png"):
        Validation(_seg_cfg(str(root), tmp_path, val_every=2, split="train"))


def _keys():
    from lib.config import SCHEMA
    return SCHEMA


def _fake_run(folder, terms, validates, scale):
    with RunMetrics(str(folder), metric_columns(terms, validates), 0, True,
                    setup_logger("t")) as metrics:
        for i in range(1, 41):
            row = {"lr": 0.01 * (1 - i / 40), **{t: scale / i for t in terms},
                   "samples_per_s": 10.0}
            if validates and i % 10 == 0:
                row["val_mIoU"] = i / 100
            metrics.write(i, row)


def test_plot_run_overlays_runs_with_titles_labels_and_legends(tmp_path):
    import subprocess

    from PIL import Image

    from lib.pictures.run_curves import read_run, run_curves_figure

    _fake_run(tmp_path / "seg_initial", ["loss", "seed", "constrain"], True, 1.0)
    _fake_run(tmp_path / "seg_sgan", ["loss", "seed", "constrain"], True, 2.0)
    runs = [read_run(str(tmp_path / name)) for name in ("seg_initial", "seg_sgan")]
    fig = run_curves_figure(runs)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == [
        "loss term: loss", "loss term: seed", "loss term: constrain", "learning rate",
        "validation mIoU (single scale, no CRF)"]
    for ax in shown:
        assert ax.get_xlabel() == "iteration" and ax.get_ylabel()
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["seg_initial", "seg_sgan"]
    miou = shown[-1].get_lines()[1].get_ydata()
    assert list(miou) == [10.0, 20.0, 30.0, 40.0]  # percent, validation rows only

    out = tmp_path / "curves.png"
    done = subprocess.run([sys.executable, os.path.join(REPO, "tools", "plot_run.py"),
                           str(tmp_path / "seg_initial"), str(tmp_path / "seg_sgan"),
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "loss, seed, constrain, lr, val_mIoU of 2 run(s)" in done.stdout
    assert Image.open(out).size[0] >= 1000
    empty = subprocess.run([sys.executable, os.path.join(REPO, "tools", "plot_run.py"),
                            str(tmp_path), "--out", str(out)], capture_output=True, text=True)
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1
    assert "no metrics.csv in" in empty.stderr


def test_runs_are_named_by_the_fewest_path_components_that_tell_them_apart(tmp_path):
    from lib.pictures.run_curves import run_names

    assert run_names([tmp_path / "seg_initial", tmp_path / "seg_sgan"]) == ["seg_initial",
                                                                          "seg_sgan"]
    assert run_names([tmp_path / "a" / "model" / "seg", tmp_path / "b" / "model" / "seg/"]) == \
        ["a/model/seg", "b/model/seg"]
