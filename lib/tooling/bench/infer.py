"""Seed inference: images/s end to end, and the CPU part per image."""
import os
import time

import numpy as np
import torch
from PIL import Image

from lib.dataset.description import VOC12
from lib.dataset.tags import load_tags, save_tags
from lib.image import feature_size, scipy_zoom_to, write_png
from lib.network.checkpoint import save_state_dict
from lib.network.sgan import SGAN
from lib.seeds.threshold import seed_to_image_size, seeds_from_cams
from lib.stage2 import infer_cam
from lib.tooling.bench.common import (
    bench_config,
    bench_dataset,
    format_table,
    memory_text,
    peak_memory,
)


def seed_output_ms(root, work, subset, size, dataset):
    """Milliseconds per image of inference's CPU part: threshold seeds from (random) class
    maps of ``dataset``'s C classes, their zoom to the image size, and the PNG write; the zoom
    also by scipy."""
    rng = np.random.default_rng(0)
    h = feature_size(size)
    jobs = [(name, classes, Image.open(VOC12.image_path(root, name)).size[::-1])
            for name, classes in subset.items()]
    total = zoom = scipy_zoom = 0.0
    for name, classes, image_size in jobs:
        maps = rng.standard_normal((dataset.num_fg_classes, h, h)).astype(np.float32)
        start = time.perf_counter()
        mask = seeds_from_cams(maps, classes, rng.random((h, h)) < 0.3,
                               boat_train=dataset.boat_train_classes)
        middle = time.perf_counter()
        seed = seed_to_image_size(mask, image_size)
        zoom += time.perf_counter() - middle
        write_png(os.path.join(work, "seed_timing", name + ".png"), seed)
        total += time.perf_counter() - start
        start = time.perf_counter()
        scipy_zoom_to(mask, image_size, 0)
        scipy_zoom += time.perf_counter() - start
    return {key: 1e3 * value / len(jobs) for key, value in
            (("total", total), ("zoom", zoom), ("zoom_scipy", scipy_zoom))}


def bench_infer(root, work, options, device):
    """Seed inference (lib.stage2.infer_cam.run, threshold seeds) on the first
    ``infer_images`` images, from a freshly initialised model: images/s end to end, and
    the per-image time of the seeds and PNG write alone."""
    tags = load_tags(os.path.join(root, "im_tags.pkl"))
    subset = {name: tags[name] for name in sorted(tags)[:options.infer_images]}
    cue_file = "bench_infer_tags.pkl"
    save_tags(subset, os.path.join(root, cue_file))
    rows = []
    for width_mult in options.widths:
        checkpoint = os.path.join(work, f"sgan_width{width_mult}.pth")
        torch.manual_seed(0)
        save_state_dict(SGAN(width_mult=width_mult).state_dict(), checkpoint)
        for test_batch_size in options.infer_batch_sizes:
            cfg = bench_config(root, options, cue_file=cue_file,
                          width_mult=width_mult, checkpoint=checkpoint,
                          test_batch_size=test_batch_size, num_worker=options.workers,
                          res_path=os.path.join(work, "result"), overwrite=True)
            start = time.perf_counter()
            infer_cam.run(cfg)
            elapsed = time.perf_counter() - start
            rows.append({"width_mult": width_mult, "test_batch_size": test_batch_size,
                         "images": len(subset), "images_per_s": len(subset) / elapsed})
    dataset = bench_dataset(options)
    return {"runs": rows, "classes": dataset.num_fg_classes,
            "seed_output_ms": seed_output_ms(root, work, subset, options.size, dataset),
            **peak_memory()}


def infer_table(result):
    body = [[r["width_mult"], r["test_batch_size"], r["images"], f"{r['images_per_s']:.2f}"]
            for r in result["runs"]]
    seeds = result["seed_output_ms"]
    return ("\nseed inference, end to end (decode, network, seeds, PNG)\n"
            + format_table(["width_mult", "test_batch_size", "images", "images/s"], body)
            + f"\nthreshold seeds of {result['classes']} classes + zoom to image size + PNG "
              f"write: {seeds['total']:.2f} ms per image on the CPU (of which zoom "
              f"{seeds['zoom']:.2f} ms; by scipy {seeds['zoom_scipy']:.2f} ms)\n"
            + memory_text(result))
