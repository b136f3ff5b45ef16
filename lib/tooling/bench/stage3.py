"""Stage 3 (recipe 11): the batch CRF, inference end to end and the training step.

W = ``crf_workers`` (default: the cores this process may use). Issue 14's goal: the batch CRF
and the inference at least 0.8 x W times the serial figure with W workers.
- seg_crf: the dense CRFs of one training batch (``crf_batch`` images at the label side, 41 x 41
  for S = 321, the image41 of VOC12SegDataset) serially, as the published CRF layer runs them,
  in W worker processes (lib.crf.batch.BatchCRF) and as the default (``crf_workers: auto``,
  lib.crf.workers) chooses for the batch, alternately; the marginals must be equal.
- seg_infer: images/s end to end (decode, three scales, zooms, softmax, full-size CRF, PNG): the
  published test_ms.py's way (one image at a time, scipy zooms, the CRF in this process)
  against infer_seg's own loop (zooms on the device, the CRFs in W worker processes while the
  network takes the next image; also with the CRF in this process, and in batches of
  ``seg_batch`` images, one forward per scale each; the serial ways on fewer images, as their
  rate is per image), and what the default chooses. On a CPU the network is a stub, fixed
  random logits of DeepLabV2's shapes: the real one would dominate and take the cores the CRF
  workers need. On CUDA it is DeepLabV2 with random weights. And the network part alone
  (zooms on the device and the forwards, no CRF) with DeepLabV2, one image at a time against
  batches of ``seg_batch`` (on a CPU at the smallest of ``widths``).
- seg_train: SegTraining's step at S through the loop's own step, the seconds in its batch CRF
  and their share of the step, with the CRFs in W workers, serially (as published) and where
  the default puts them; FLOPs counted from the layer shapes, MFU on CUDA.
"""
import contextlib
import functools
import os
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from lib.config import AUTO, load_config
from lib.crf.batch import BatchCRF
from lib.crf.workers import CRFBatch, crf_choice
from lib.dataset.tags import load_tags
from lib.image import read_label_png, write_palette_png
from lib.losses.seg import CRF_ITERATIONS, CRF_SCALE, smoothed_probabilities
from lib.network.deeplab import DeepLabV2
from lib.stage3.infer_seg import Images, as_list, label_jobs, label_path, write_labels
from lib.stage3.predict import TEST_SCALES, batch_scores, predict_labels
from lib.stage3.train_seg import SegTraining
from lib.tooling.bench.common import (
    CHANNELS_LAST,
    PRECISIONS,
    bench_config,
    bench_dataset,
    format_table,
    memory_text,
    peak_memory,
    sync,
)
from lib.tooling.bench.train import (
    BACKWARD_FACTOR,
    conv_flops,
    mfu_cell,
    peak_memory_cell,
    row_runner,
    throughput,
    time_training,
)
from lib.training.distributed import DistContext
from lib.training.runtime import available_cores, resolve_device
from lib.workers import WorkerQueue

PARALLEL_GOAL = 0.8  # issue 14: W workers reach at least 0.8 x W the serial rate
RESIZE_MARGIN = 32  # seg_resize = S + 32: the published 353 for S = 321 (crop offsets 0..32)
STUB_LOGIT_STD = 3.0  # spread of the stub's and seg_crf's random logits (confident, not flat)


def seg_config(root, options, **overrides):
    """Stage 3's config on the synthetic tree: crops of S from images resized to S + 32, the
    generated seeds, W CRF workers."""
    cfg = bench_config(root, options, seg_resize=options.size + RESIZE_MARGIN,
                       crop_size=options.size, crf_workers=options.crf_workers, **overrides)
    cfg.seed_dir = os.path.join(root, "ini_seed", cfg.seed_subdir)  # where generate_dataset wrote
    return cfg


def goal_fields(speedup, workers):
    return {"speedup": speedup, "goal": PARALLEL_GOAL * workers,
            "goal_met": speedup >= PARALLEL_GOAL * workers}


def goal_text(result):
    verdict = "met" if result["goal_met"] else "NOT met"
    return (f"{result['speedup']:.2f}x the serial rate with W = {result['workers']} workers; "
            f"goal {PARALLEL_GOAL} x W = {result['goal']:.1f}x: {verdict} (load average "
            f"{result['load_average']:.1f} on {available_cores()} cores when it started)")


def crf_batch_inputs(root, options):
    """(unary, images) of one training batch: -p of random logits (the loss's unary) and the
    image41 of the first ``crf_batch`` training samples (uint8 BGR, as the loss passes them)."""
    dataset = SegTraining().build_dataset(seg_config(root, options, batch_size=options.crf_batch))
    images = np.stack([dataset[i]["image41"].numpy() for i in range(options.crf_batch)])
    generator = torch.Generator().manual_seed(0)
    logits = STUB_LOGIT_STD * torch.randn(len(images), bench_dataset(options).num_classes,
                                          *images.shape[1:3], generator=generator)
    return (-smoothed_probabilities(logits)).detach().numpy(), images


def default_choice(batch=None, pipelined=False):
    """{"workers", "choice"}: where the default ``crf_workers`` (auto) runs the CRFs of one
    process here (lib.crf.workers.crf_choice), and its log line."""
    workers, line = crf_choice(load_config(None), DistContext(0, 1, torch.device("cpu")), batch,
                               pipelined)
    return {"workers": workers, "choice": line}


def default_text(result):
    return f"default: {result['default']['choice']}"


def bench_seg_crf(root, options):
    """Milliseconds per batch CRF serially, in W workers and as the default chooses, timed
    alternately (so that other load on the machine hits each alike; the default's way is one
    of the others, or a third); their marginals must be equal."""
    unary, images = crf_batch_inputs(root, options)
    default = default_choice(CRFBatch(len(images), images.shape[1], unary.shape[1],
                                      CRF_ITERATIONS))
    ways = {"serial": 0, "workers": options.crf_workers, "auto": default["workers"]}
    load = os.getloadavg()[0]
    seconds = dict.fromkeys(set(ways.values()), 0.0)
    with contextlib.ExitStack() as stack:
        crfs = {workers: stack.enter_context(BatchCRF(workers)) for workers in seconds}
        first = {workers: crf(unary, images, CRF_SCALE, CRF_ITERATIONS)
                 for workers, crf in crfs.items()}
        if not all(np.array_equal(first[0], marginals) for marginals in first.values()):
            raise RuntimeError("the batch CRF in workers differs from the serial one")
        for _ in range(options.crf_repeats):
            for workers, crf in crfs.items():
                start = time.perf_counter()
                crf(unary, images, CRF_SCALE, CRF_ITERATIONS)
                seconds[workers] += time.perf_counter() - start
    ms = {key: 1e3 * seconds[workers] / options.crf_repeats for key, workers in ways.items()}
    return {"batch": len(images), "side": images.shape[1], "labels": unary.shape[1],
            "workers": options.crf_workers, "repeats": options.crf_repeats, "ms_per_batch": ms,
            "load_average": load, "default": default, **peak_memory(),
            **goal_fields(ms["serial"] / ms["workers"], options.crf_workers)}


def seg_crf_table(result):
    ms = result["ms_per_batch"]
    body = [["serial, one image after another (published)", f"{ms['serial']:.1f}"],
            [f"BatchCRF, {result['workers']} worker processes", f"{ms['workers']:.1f}"],
            [default_text(result), f"{ms['auto']:.1f}"]]
    return (f"\nstage 3 batch CRF: {result['batch']} images of {result['side']} x "
            f"{result['side']}, {result['labels']} labels, {CRF_ITERATIONS} mean-field "
            f"iterations, {result['repeats']} batches each way\n"
            + format_table(["method", "ms per batch"], body) + "\n" + goal_text(result)
            + "\n" + memory_text(result))


class StubNetwork:
    """Fixed random logits (1 x C + 1 x s x s, float32) for each input side S, s as
    DeepLabV2's output: a network that costs nothing, for measuring everything else on a CPU."""

    def __init__(self, scales, num_classes):
        with torch.device("meta"):
            model = DeepLabV2(num_classes=num_classes).eval()
        generator = torch.Generator().manual_seed(0)
        self.logits = {}
        for side in scales:
            shape = model(torch.empty(1, 3, side, side, device="meta")).shape
            self.logits[side] = STUB_LOGIT_STD * torch.randn(shape, generator=generator)

    def __call__(self, batch):
        logits = self.logits[batch.shape[-1]]
        return logits.expand(len(batch), *logits.shape[1:]).to(batch.device)


def inference_network(device, num_classes):
    """(forward, description): the stub on a CPU, DeepLabV2 (random weights, eval) on CUDA."""
    if device.type != "cuda":
        return StubNetwork(TEST_SCALES, num_classes), "stub network (fixed random logits), CPU"
    torch.manual_seed(0)
    model = DeepLabV2(num_classes=num_classes).to(device).eval()
    return (lambda batch: model(batch).float()), f"DeepLabV2 (random weights) on {device}"


def published_inference(forward, images, device, out_dir):
    """test_ms.py's loop: one image after another, scipy zooms, softmax, the CRF and the PNG
    in this process."""
    for index in range(len(images)):
        item = images[index]
        labels = predict_labels(forward, item["image"], TEST_SCALES, device, exact=True, crf=True)
        write_palette_png(os.path.join(out_dir, item["name"] + ".png"), labels)


def repository_inference(forward, images, device, out_dir, workers, loader_workers,
                         palette, batch_size=1):
    """infer_seg's loop (lib.inference): the images decoded by ``loader_workers`` processes,
    the network in this process on batches of ``batch_size`` (test_batch_size), softmax, CRF
    and PNG in ``workers`` processes (0: in this process)."""
    loader = DataLoader(images, batch_size=batch_size, collate_fn=as_list,
                        num_workers=loader_workers)
    write = functools.partial(write_labels, True, palette)
    with WorkerQueue(write, workers) as writer, torch.no_grad():
        for batch in loader:
            for job, arrays in label_jobs(forward, batch, TEST_SCALES, device,
                                          functools.partial(label_path, out_dir)):
                writer.submit(job, arrays)


def scores_rate(forward, images, device, batch_size):
    """Images/s of the network part of infer_seg (lib.stage3.predict.batch_scores: zooms on
    the device, one forward per scale per batch of ``batch_size``) on decoded ``images``,
    after one untimed batch."""
    with torch.no_grad():
        batch_scores(forward, images[:batch_size], TEST_SCALES, device)
        sync(device)
        start = time.perf_counter()
        for first in range(0, len(images), batch_size):
            batch_scores(forward, images[first:first + batch_size], TEST_SCALES, device)
        sync(device)
    return len(images) / (time.perf_counter() - start)


def bench_seg_batching(images, options, device):
    """The network part one image at a time and in batches of ``seg_batch``: DeepLabV2 with
    random weights (on a CPU at the smallest width of ``widths``)."""
    width = 1.0 if device.type == "cuda" else min(options.widths)
    torch.manual_seed(0)
    model = DeepLabV2(width_mult=width, num_classes=bench_dataset(options).num_classes)
    model = model.to(device).eval()
    decoded = [images[i]["image"] for i in range(len(images))]
    rates = {size: scores_rate(lambda batch: model(batch).float(), decoded, device, size)
             for size in (1, options.seg_batch)}
    return {"network": f"DeepLabV2 width {width:g} (random weights) on {device}",
            "images": len(decoded), "batch": options.seg_batch,
            "images_per_s": {"one_at_a_time": rates[1], "batched": rates[options.seg_batch]},
            "speedup": rates[options.seg_batch] / rates[1]}


def label_agreement(names, folders):
    """Fraction of pixels where the label PNGs of the two folders agree."""
    same = total = 0
    for name in names:
        first, second = (read_label_png(os.path.join(folder, name + ".png")) for folder in folders)
        same += int((first == second).sum())
        total += first.size
    return same / total


def bench_seg_infer(root, work, options, device):
    """Images/s of each way: the serial ones on the first ``seg_serial_images`` images, the
    workers on the first ``seg_infer_images`` (a pipeline needs more to fill); and the fraction
    of pixels where infer_seg's labels equal the published way's (recipe 11.5 asks >= 99.9%)."""
    names = sorted(load_tags(os.path.join(root, "im_tags.pkl")))  # the synthetic VOC images
    serial_images = Images(root, names[:options.seg_serial_images])
    images = Images(root, names[:options.seg_infer_images])
    dataset = bench_dataset(options)
    forward, network = inference_network(device, dataset.num_classes)
    ways = (("published", "one image at a time: scipy zooms, CRF in this process (published)",
             serial_images, lambda out: published_inference(forward, serial_images, device, out)),
            ("inline", "infer_seg's loop, CRF in this process", serial_images,
             lambda out: repository_inference(forward, serial_images, device, out, 0,
                                              options.workers, dataset.palette)),
            ("workers", f"infer_seg's loop, CRF in {options.crf_workers} worker processes",
             images, lambda out: repository_inference(forward, images, device, out,
                                                      options.crf_workers, options.workers,
                                                      dataset.palette)),
            ("batched", f"infer_seg's loop, test_batch_size {options.seg_batch}, CRF in "
                        f"{options.crf_workers} worker processes",
             images, lambda out: repository_inference(forward, images, device, out,
                                                      options.crf_workers, options.workers,
                                                      dataset.palette, options.seg_batch)))
    load = os.getloadavg()[0]
    rows = {}
    for key, description, subset, run in ways:
        out = os.path.join(work, f"seg_infer_{key}")
        os.makedirs(out, exist_ok=True)
        sync(device)
        start = time.perf_counter()
        run(out)
        sync(device)
        rows[key] = {"description": description, "images": len(subset),
                     "images_per_s": len(subset) / (time.perf_counter() - start)}
    folders = [os.path.join(work, f"seg_infer_{key}") for key in ("published", "workers")]
    rates = {key: row["images_per_s"] for key, row in rows.items()}
    return {"network": network, "workers": options.crf_workers,
            "loader_workers": options.workers, "rows": rows, "load_average": load,
            "default": default_choice(pipelined=True),
            "label_agreement": label_agreement(
                names[:min(options.seg_serial_images, options.seg_infer_images)], folders),
            "batch_labels_equal": label_agreement(
                names[:options.seg_infer_images],
                [os.path.join(work, f"seg_infer_{key}") for key in ("workers", "batched")]) == 1,
            "network_part": bench_seg_batching(images, options, device),
            "classes": dataset.num_classes, **peak_memory(),
            **goal_fields(rates["workers"] / rates["published"], options.crf_workers)}


def seg_infer_table(result):
    body = [[row["description"], row["images"], f"{row['images_per_s']:.2f}"]
            for row in result["rows"].values()]
    part = result["network_part"]
    rates = part["images_per_s"]
    batching = [["1 (one image at a time)", f"{rates['one_at_a_time']:.2f}"],
                [f"{part['batch']} (test_batch_size {part['batch']})", f"{rates['batched']:.2f}"]]
    return (f"\nstage 3 inference end to end: scales {'/'.join(map(str, TEST_SCALES))} + "
            f"full-size CRF of {result['classes']} labels; {result['network']}\n"
            + format_table(["way", "images", "images/s"], body) + "\n" + goal_text(result)
            + f"; labels equal to the published way's on {100 * result['label_agreement']:.3f}%"
              f" of pixels; batched labels equal to one at a time's: "
              f"{'yes' if result['batch_labels_equal'] else 'NO'}"
            + f"\nstage 3 network part (zooms on the device, one forward per scale per batch; "
              f"no CRF): {part['network']}, {part['images']} images\n"
            + format_table(["images per forward", "images/s"], batching)
            + f"\nbatches of {part['batch']}: {part['speedup']:.2f}x one image at a time\n"
            + default_text(result) + "\n" + memory_text(result))


class TimedCRF:
    """A batch CRF that records the seconds of each call in ``durations``."""

    def __init__(self, crf, durations):
        self.crf, self.durations = crf, durations

    def __call__(self, *args):
        start = time.perf_counter()
        marginals = self.crf(*args)
        self.durations.append(time.perf_counter() - start)
        return marginals


class TimedSegTraining(SegTraining):
    """SegTraining whose batch CRF records its seconds per step in ``crf_durations``."""

    def start(self, cfg, ctx):
        super().start(cfg, ctx)
        self.crf_durations = []
        self.crf_processes = self.crf.workers
        self.crf = TimedCRF(self.crf, self.crf_durations)

    def stop(self, failed):
        if isinstance(self.crf, TimedCRF):
            self.crf = self.crf.crf
        super().stop(failed)


def deeplab_forward_flops(size, batch):
    """FLOPs of one DeepLabV2 (vgg16) forward pass, counted from the layer shapes."""
    with torch.device("meta"):
        model = DeepLabV2().eval()
    return conv_flops(model, lambda: model(torch.empty(batch, 3, size, size, device="meta")))[0]


def _seg_train_row(root, options, mode, crf_workers):
    """SegTraining's step in one configuration."""
    device = resolve_device(options.device)
    precision = mode.removesuffix(CHANNELS_LAST)
    cfg = seg_config(root, options, batch_size=options.batch, amp=PRECISIONS[precision],
                     channels_last=mode.endswith(CHANNELS_LAST),
                     max_iter=options.warmup + options.steps)
    cfg.crf_workers = crf_workers
    task = TimedSegTraining()
    seconds, peak, peak_kind = time_training(task, cfg, options, device)
    crf_seconds = sum(task.crf_durations[-options.steps:]) / options.steps
    flops = BACKWARD_FACTOR * deeplab_forward_flops(options.size, options.batch)
    return {"mode": mode, "crf_workers": crf_workers, "crf_processes": task.crf_processes,
            "crf_choice": task.crf_line, "batch": options.batch,
            "s_per_iter": seconds, "samples_per_s": options.batch / seconds,
            "crf_s_per_iter": crf_seconds, "crf_share": crf_seconds / seconds,
            "peak_memory_bytes": peak, "peak_memory_kind": peak_kind,
            **throughput(flops, seconds, device, precision)}


def bench_seg_train(root, options, device):
    """One row per mode with the CRFs in W workers, one (the first mode) with them serial and
    one (the first mode) with the default, crf_workers auto, each run by row_runner."""
    configs = [(mode, options.crf_workers) for mode in options.modes] + [
        (options.modes[0], 0), (options.modes[0], AUTO)]
    run = row_runner(options, device)
    return [run(_seg_train_row, root, options, mode, workers) for mode, workers in configs]


def crf_cell(row):
    """Where a row's CRFs ran: W workers, serial, or what the default chose."""
    workers = row["crf_processes"]
    where = f"{workers} workers" if workers > 1 else "serial"
    return f"auto: {where}" if row["crf_workers"] == AUTO else where


def seg_train_table(rows):
    body = [[r["mode"], crf_cell(r),
             r["batch"], f"{r['s_per_iter']:.3f}", f"{r['samples_per_s']:.1f}",
             f"{1e3 * r['crf_s_per_iter']:.0f} ({100 * r['crf_share']:.1f}%)",
             peak_memory_cell(r), f"{r['flops_per_iter'] / 1e9:.4g}",
             f"{r['tflops_per_s']:.3g}", mfu_cell(r)] for r in rows]
    return ("\nstage 3 training step (DeepLabV2 vgg16, seed + constrain loss with its CRF)\n"
            + format_table(["mode", "CRF", "batch", "s/iter", "samples/s", "CRF ms (share)",
                            "peak MiB", "GFLOP/iter", "TFLOP/s", "MFU"], body)
            + "".join(f"\ndefault: {r['crf_choice']}" for r in rows
                      if r["crf_workers"] == AUTO))
