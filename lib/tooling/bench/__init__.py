"""Benchmarks of every stage at the paper's input size (``tools/bench.py``, ``make bench``).

Synthetic VOC-sized images (lib.tooling.synthetic) go through each stage, measured against
the published implementation's way where it differed:
- data: training samples per second per loader worker and bytes per collated batch, for a
  published-style loader (scipy zooms, float32 image and the two N x N attention masks per
  sample), the default float32 items and the uint8 items that training uses;
- train: seconds per iteration, peak memory, FLOPs per iteration counted from the layer
  shapes, achieved FLOP/s and, on CUDA, MFU against the device's peak;
- infer: seed inference images per second end to end (lib.stage2.infer_cam.run);
- eval: label PNGs per second against a one-file-at-a-time PIL + np.bincount loop;
- seg_crf, seg_infer, seg_train: stage 3's batch CRF serial vs in W workers, its inference
  end to end the published way vs infer_seg's, its training step with the CRF's share
  (lib.tooling.bench.stage3).
"""
import os
import tempfile
from dataclasses import asdict

import torch

from lib.tooling.bench.common import STAGES, bench_device, check_options, default_options
from lib.tooling.bench.data import bench_data, data_table
from lib.tooling.bench.evaluation import bench_eval, eval_table
from lib.tooling.bench.infer import bench_infer, infer_table
from lib.tooling.bench.stage3 import (
    bench_seg_crf,
    bench_seg_infer,
    bench_seg_train,
    seg_crf_table,
    seg_infer_table,
    seg_train_table,
)
from lib.tooling.bench.train import bench_train, train_table
from lib.tooling.synthetic import generate_dataset

__all__ = ["default_options", "run_benchmark"]


def device_description(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


def run_benchmark(options, report=print):
    """Run the chosen stages; return the results (the JSON object). ``report`` gets each
    stage's table as it finishes."""
    check_options(options)
    device = bench_device(options.device)
    results = {"device": device_description(device), "device_type": device.type,
               "torch": torch.__version__, "size": options.size, "images": options.images,
               "image_sides": [options.min_side, options.max_side], "options": asdict(options)}
    report(f"SGAN benchmark on {results['device']}, torch {torch.__version__}: S = "
           f"{options.size}, {options.images} synthetic images of "
           f"{options.min_side}-{options.max_side} px")
    with tempfile.TemporaryDirectory(prefix="sgan_bench_") as temporary:
        work = options.work_dir or temporary
        root = os.path.join(work, "voc")
        generate_dataset(root, num_images=options.images, min_size=options.min_side,
                         max_size=options.max_side, seed=0)
        stages = {"data": lambda: bench_data(root, options, device),
                  "train": lambda: bench_train(root, options, device),
                  "infer": lambda: bench_infer(root, work, options, device),
                  "eval": lambda: bench_eval(root, work, options),
                  "seg_crf": lambda: bench_seg_crf(root, options),
                  "seg_infer": lambda: bench_seg_infer(root, work, options, device),
                  "seg_train": lambda: bench_seg_train(root, options, device)}
        for stage in STAGES:
            if stage in options.stages:
                results[stage] = stages[stage]()
                report(TABLES[stage](results[stage]))
    return results


TABLES = {"data": data_table, "train": train_table, "infer": infer_table, "eval": eval_table,
          "seg_crf": seg_crf_table, "seg_infer": seg_infer_table, "seg_train": seg_train_table}
