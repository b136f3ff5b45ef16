import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import scipy.ndimage as nd
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from conftest import REPO
from lib.dataset.voc12_sgan import VOC12ClsSalDataset
from lib.errors import UserError
from lib.evaluation.folder import evaluate_folder
from lib.image import (
    read_label_png,
    read_prediction_png,
    write_png,
    zoom_to,
)
from lib.network.deeplab import DeepLabV2
from lib.network.sgan import SGAN, saliency_affinity
from lib.normalisation import normalise_image, normalise_on_device, normalise_tensor
from lib.tooling.bench.common import BenchOptions, check_options
from lib.tooling.bench.data import PublishedStyleDataset
from lib.tooling.bench.evaluation import one_by_one_confusion
from lib.tooling.bench.stage3 import deeplab_forward_flops, goal_fields
from lib.tooling.bench.train import forward_flops

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def test_quick_benchmark_prints_tables_and_one_json_line(tmp_path):
    run = subprocess.run([sys.executable, "tools/bench.py", "--quick", "--work_dir",
                          str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    assert "| loader |" in run.stdout and "| method | files/s |" in run.stdout
    result = json.loads(lines[-1])
    assert {"device", "torch", "size", "data", "train", "infer", "eval"} <= set(result)
    loaders = result["data"]["loaders"]
    assert set(loaders) == {"published", "float32", "uint8"}
    for row in loaders.values():
        assert row["samples_per_s_per_worker"] > 0 and row["batch_bytes"] > 0
    assert loaders["uint8"]["batch_bytes"] < loaders["float32"]["batch_bytes"] \
        < loaders["published"]["batch_bytes"]
    for row in result["train"]:
        assert row["s_per_iter"] > 0 and row["peak_memory_bytes"] > 0
        assert row["flops_per_iter"] > 0 and row["tflops_per_s"] > 0
        assert "mfu" in row
    assert all(row["images_per_s"] > 0 for row in result["infer"]["runs"])
    assert result["infer"]["seed_output_ms"]["total"] > 0
    assert set(result["eval"]["files_per_s"]) == {"one_by_one", "ours_1_process",
                                                  "ours_parallel"}
    assert "| serial, one image after another (published) |" in run.stdout
    assert "stub network" in run.stdout and "CRF ms (share)" in run.stdout
    crf = result["seg_crf"]
    assert crf["batch"] == 15 and crf["side"] == 9 and crf["workers"] >= 1
    assert min(crf["ms_per_batch"].values()) > 0 and isinstance(crf["goal_met"], bool)
    # the default (crf_workers auto) keeps a 9 x 9 batch's CRFs in the process: the serial figure
    too_small = ("CRF in this process (crf_workers auto: batches of 15 images of 9 x 9 are too "
                 "small to gain)")
    assert crf["default"] == {"workers": 0, "choice": too_small}
    assert crf["ms_per_batch"]["auto"] == crf["ms_per_batch"]["serial"]
    assert f"| default: {too_small} |" in run.stdout
    infer = result["seg_infer"]
    assert set(infer["rows"]) == {"published", "inline", "workers", "batched"}
    assert all(row["images_per_s"] > 0 for row in infer["rows"].values())
    assert infer["label_agreement"] >= 0.999  # recipe 11.5's bar for the device zooms
    assert infer["default"]["workers"] == crf["workers"]  # full-size images: the cores
    assert infer["batch_labels_equal"] is True
    part = infer["network_part"]
    assert part["batch"] == 2 and "DeepLabV2" in part["network"]
    assert min(part["images_per_s"].values()) > 0
    assert "| 2 (test_batch_size 2) |" in run.stdout
    rows = result["seg_train"]
    # W workers, serial, then the default: in the process for the 9 x 9 batches of 2
    assert [row["crf_workers"] for row in rows] == [crf["workers"], 0, "auto"]
    assert [row["crf_processes"] for row in rows[1:]] == [0, 0]
    assert rows[2]["crf_choice"] in run.stdout and "| auto: serial |" in run.stdout
    for row in rows:
        assert row["s_per_iter"] > 0 and 0 < row["crf_s_per_iter"] < row["s_per_iter"]
        assert row["crf_share"] == row["crf_s_per_iter"] / row["s_per_iter"]
        assert row["flops_per_iter"] == 3 * deeplab_forward_flops(65, 2)


@pytest.mark.parametrize("kwargs", [{}, IMAGENET])
def test_uint8_items_normalised_on_the_device_equal_the_float_items(synth_voc, kwargs):
    floats = VOC12ClsSalDataset(synth_voc, "im_tags.pkl", new_size=65, **kwargs)
    uint8 = VOC12ClsSalDataset(synth_voc, "im_tags.pkl", new_size=65, normalise=False, **kwargs)
    items = [uint8[i] for i in range(len(uint8))]  # mirror on: some are flipped
    batch = torch.stack([item["image"] for item in items])
    assert batch.dtype == torch.uint8 and batch.shape[1:] == (65, 65, 3)
    expected = torch.stack([floats[i]["image"] for i in range(len(floats))])
    for normalise in (normalise_on_device, normalise_tensor):
        got = normalise(batch, **kwargs)
        assert got.dtype == torch.float32 and got.is_contiguous()
        assert torch.equal(got, expected)
    for key in ("label", "sal", "seed", "size"):
        assert all(torch.equal(items[i][key], floats[i][key]) for i in range(len(items)))


def test_normalise_tensor_equals_numpy_on_every_grey_level():
    levels = torch.arange(256, dtype=torch.uint8)
    images = torch.stack([levels, levels.flip(0), levels.roll(7)], -1).reshape(4, 8, 8, 3)
    for kwargs in ({}, IMAGENET):
        expected = normalise_image(images.numpy(), **kwargs)
        assert np.array_equal(normalise_tensor(images, **kwargs).numpy(), expected)


def _random_arrays(rng, count):
    for trial in range(count):
        height, width = (int(v) for v in rng.integers(1, 400, size=2))
        shape = (height, width, 3) if trial % 2 else (height, width)
        array = rng.integers(0, 256, size=shape, dtype=np.uint8)
        if trial % 3 == 0:
            array = (array // 85 * 85).astype(np.uint8)  # few levels: many exact ties
        if trial % 5 == 0:
            array = array[::-1, ::2]  # not contiguous
        yield array


def test_uint8_zoom_equals_scipy_bit_for_bit():
    rng = np.random.default_rng(0)
    for array in _random_arrays(rng, 120):
        for out_hw in [(321, 321), (41, 41), tuple(int(v) for v in rng.integers(1, 400, 2))]:
            for order in (0, 1):
                factors = (out_hw[0] / array.shape[0], out_hw[1] / array.shape[1])
                expected = nd.zoom(array, factors + (1,) * (array.ndim - 2), order=order)
                got = zoom_to(array, out_hw, order)
                assert got.dtype == np.uint8 and got.shape == expected.shape
                assert np.array_equal(got, expected), (array.shape, out_hw, order)


def test_zoom_keeps_scipy_for_other_types():
    values = np.random.default_rng(1).random((13, 17))
    expected = nd.zoom(values, (41 / 13, 41 / 17), order=1)
    assert np.array_equal(zoom_to(values, (41, 41), 1), expected)


def test_published_style_items_hold_the_spec_attention_matrices(synth_voc):
    ours = VOC12ClsSalDataset(synth_voc, "im_tags.pkl", new_size=65)
    published = PublishedStyleDataset(synth_voc, "im_tags.pkl", new_size=65)
    for i in range(4):
        a, b = ours[i], published[i]
        for key in ("image", "label", "sal", "seed", "size"):
            assert torch.equal(a[key], b[key]), key
        fg_pairs, bg_average = saliency_affinity(a["sal"][None])
        assert torch.equal(b["fg_pairs"], fg_pairs[0])
        assert torch.equal(b["bg_average"], bg_average[0])


def test_flops_counted_from_shapes_equal_torch_flop_counter():
    model = SGAN(width_mult=0.125).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(2, 3, 65, 65), torch.ones(2, 9, 9))
    assert forward_flops(0.125, 65, 2) == counter.get_total_flops()


def test_deeplab_flops_counted_from_shapes_equal_torch_flop_counter():
    with torch.device("meta"):
        model = DeepLabV2().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(2, 3, 65, 65, device="meta"))
    assert deeplab_forward_flops(65, 2) == counter.get_total_flops()


def test_the_parallel_goal_is_0_8_w():
    assert goal_fields(1.6, 2) == {"speedup": 1.6, "goal": 1.6, "goal_met": True}
    assert not goal_fields(1.59, 2)["goal_met"] and goal_fields(3.3, 4)["goal_met"]


def test_prediction_reader_equals_the_label_reader(tmp_path):
    labels = np.random.default_rng(2).integers(0, 22, (37, 53)).astype(np.uint8)
    write_png(tmp_path / "cv8.png", labels)
    cv2.imwrite(str(tmp_path / "cv16.png"), labels.astype(np.uint16) * 1000)
    Image.fromarray(labels).save(tmp_path / "pil8.png")
    Image.fromarray(labels > 10).save(tmp_path / "bits.png")
    Image.fromarray(labels).save(tmp_path / "trns.png", transparency=3)
    palette = Image.fromarray(labels, "P")
    palette.putpalette([k % 256 for k in range(768)])
    palette.save(tmp_path / "palette.png")
    for path in sorted(tmp_path.iterdir()):
        expected = read_label_png(str(path))
        got = read_prediction_png(str(path))
        assert got.dtype == expected.dtype and np.array_equal(got, expected), path.name
    header = (tmp_path / "cv8.png").read_bytes()[:33]
    for broken in (b"\x89PNG\r\n\x1a\n", header[:20], header):
        (tmp_path / "broken.png").write_bytes(broken)
        with pytest.raises(UserError, match="cannot read"):
            read_prediction_png(str(tmp_path / "broken.png"))


def test_baseline_loop_and_evaluate_folder_agree(synth_voc, tmp_path):
    gt_dir = os.path.join(synth_voc, "SegmentationClassAug")
    for name in os.listdir(gt_dir):
        gt = read_label_png(os.path.join(gt_dir, name))
        write_png(tmp_path / name, np.where(gt == 255, 21, gt).astype(np.uint8))
    result = evaluate_folder(str(tmp_path), gt_dir, 22, workers=0, progress=False)
    assert np.array_equal(one_by_one_confusion(str(tmp_path), gt_dir, 22), result["matrix"])


def test_options_are_checked():
    with pytest.raises(UserError, match="needs CUDA"):
        check_options(BenchOptions(device="cpu", modes=("bf16",)))
    with pytest.raises(UserError, match="unknown stage"):
        check_options(BenchOptions(device="cpu", modes=("fp32",), stages=("data", "fit")))
    with pytest.raises(UserError, match="unknown mode"):
        check_options(BenchOptions(device="cpu", modes=("fp64",)))
    with pytest.raises(UserError, match="8k \\+ 1"):
        check_options(BenchOptions(device="cpu", modes=("fp32",), size=320))
    check_options(BenchOptions(device="cpu", modes=("fp32",), size=320, stages=("train",)))
    with pytest.raises(UserError, match="crf_workers"):
        check_options(BenchOptions(device="cpu", modes=("fp32",), crf_workers=0))
    with pytest.raises(UserError, match="seg_infer_images"):
        check_options(BenchOptions(device="cpu", modes=("fp32",), images=4, seg_infer_images=5))
    with pytest.raises(UserError, match="seg_batch"):
        check_options(BenchOptions(device="cpu", modes=("fp32",), seg_batch=0))


def test_coco_rows_count_its_81_labels_and_peak_memory(tmp_path):
    """--dataset_name coco14: the batch CRF at 81 labels and its peak memory (COCO's scale)."""
    from dataclasses import replace

    from lib.tooling.bench import run_benchmark
    from lib.tooling.bench.common import default_options

    options = replace(default_options("cpu", quick=True), stages=("seg_crf",),
                      dataset_name="coco14", work_dir=str(tmp_path))
    tables = []
    result = run_benchmark(options, report=tables.append)["seg_crf"]
    assert result["labels"] == 81 and result["peak_rss_mib"] > 0
    assert "9 x 9, 81 labels" in tables[-1] and "peak memory: " in tables[-1]
    with pytest.raises(UserError, match="did you mean 'coco14'"):
        check_options(replace(options, dataset_name="coco2014"))
