"""Training step: seconds per iteration, peak memory, FLOPs counted from the layer shapes, MFU."""
import concurrent.futures
import multiprocessing
import resource
import time

import torch
import torch.nn as nn
from torch.utils.data import default_collate

from lib.network.sgan import SGAN
from lib.optim import set_lr
from lib.stage2.train_sgan import SGANTraining
from lib.tooling.bench.common import (
    CHANNELS_LAST,
    PRECISIONS,
    bench_config,
    format_table,
    mebibytes,
    sync,
)
from lib.training.distributed import DistContext
from lib.training.loop import prepare_batch, training_step
from lib.training.runtime import amp_dtype, resolve_device

# Dense peak TFLOP/s by device name (first match wins): bf16/fp16 tensor cores, TF32 tensor
# cores (what cuDNN uses for float32 convolutions by default) and plain fp32.
PEAK_TFLOPS = (
    ("H200", {"bf16": 989.0, "tf32": 494.5, "fp32": 66.9}),
    ("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    ("H100 NVL", {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    ("H100", {"bf16": 989.0, "tf32": 494.5, "fp32": 66.9}),
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
)
BACKWARD_FACTOR = 3  # forward + backward = 3 x the forward's FLOPs


def conv_flops(model, run):
    """(FLOPs of ``model``'s convolutions while ``run()`` executes, what ``run`` returned).

    Every convolution costs 2 * Cin / groups * Cout * k * k * Hout * Wout per image; with the
    model on the meta device only the shapes are computed. Element-wise work is not counted.
    """
    flops = []

    def count(module, _, out):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        flops.append(2 * out.numel() * module.in_channels // module.groups * kernel)

    hooks = [module.register_forward_hook(count) for module in model.modules()
             if isinstance(module, nn.Conv2d)]
    try:
        with torch.no_grad():
            result = run()
    finally:
        for hook in hooks:
            hook.remove()
    return sum(flops), result


def forward_flops(width_mult, size, batch):
    """FLOPs of one SGAN forward pass, counted from the layer shapes: the convolutions
    (:func:`conv_flops`) and the attention's two batched matrix products, Q^T K (2 N^2 Ck) and
    V A^T (2 C N^2)."""
    with torch.device("meta"):
        model = SGAN(width_mult=width_mult).eval()

    def run():
        features = model.backbone(torch.empty(batch, 3, size, size, device="meta"))
        model.f_query(features)
        model.f_key(features)
        model.fc9(features)
        model.fc8(model.fc6_CAM(features))
        return features.shape

    convolutions, (n, channels, h, w) = conv_flops(model, run)
    return convolutions + 2 * n * (h * w) ** 2 * (model.f_query.out_channels + channels)


def training_flops(width_mult, size, batch):
    """FLOPs of one SGAN training iteration."""
    return BACKWARD_FACTOR * forward_flops(width_mult, size, batch)


def peak_tflops(device_name, precision):
    """The device's dense peak TFLOP/s for ``precision`` (fp32 as TF32 when cuDNN allows it),
    or None for a device not in PEAK_TFLOPS."""
    for key, peaks in PEAK_TFLOPS:
        if key in device_name:
            if precision in ("bf16", "fp16"):
                return peaks["bf16"]
            return peaks["tf32"] if torch.backends.cudnn.allow_tf32 else peaks["fp32"]
    return None


def throughput(flops, seconds, device, precision):
    """FLOPs per iteration, TFLOP/s achieved and, on a CUDA device of PEAK_TFLOPS, its peak and
    the MFU (None otherwise)."""
    row = {"flops_per_iter": flops, "tflops_per_s": flops / seconds / 1e12, "peak_tflops": None,
           "mfu": None}
    if device.type == "cuda":
        row["peak_tflops"] = peak_tflops(torch.cuda.get_device_name(device), precision)
        if row["peak_tflops"]:
            row["mfu"] = row["tflops_per_s"] / row["peak_tflops"]
    return row


def time_training(task, cfg, options, device):
    """Seconds per iteration of ``options.steps`` training steps of ``task`` on one fixed
    batch of ``cfg.batch_size`` (after ``options.warmup`` untimed ones), through the loop's
    own step, between the task's ``start`` and ``stop``; and the peak memory (bytes, kind)."""
    dataset = task.build_dataset(cfg)
    batch = default_collate([dataset[i] for i in range(cfg.batch_size)])
    torch.manual_seed(cfg.random_seed)
    model = task.build_model(cfg, None)
    memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
    model.to(device, memory_format=memory_format).train()
    optimizer = task.build_optimizer(model, cfg)
    dtype = amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    ctx = DistContext(0, 1, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    task.start(cfg, ctx)
    failed = True
    try:
        for iteration in range(options.warmup + options.steps):
            if iteration == options.warmup:
                sync(device)
                start = time.perf_counter()
            set_lr(optimizer, task.learning_rate(cfg, iteration))
            training_step(task, model, optimizer, scaler,
                          prepare_batch(batch, cfg, device, task.normalisation(cfg)), cfg, ctx,
                          dtype)
        sync(device)
        seconds = (time.perf_counter() - start) / options.steps
        failed = False
    finally:
        task.stop(failed)
    if device.type == "cuda":
        return seconds, torch.cuda.max_memory_allocated(device), "cuda_max_allocated"
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "max_rss"


def in_fresh_process(function, *args):
    """``function(*args)`` in a new (spawned) process, so that its maximum resident set size
    is its own."""
    with concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def row_runner(options, device):
    """How a training row runs: on a CPU in a fresh process (its own peak memory), unless the
    benchmark is ``--quick`` (a smoke test: the rows share this process's peak); on CUDA here
    (the peak is CUDA's allocator's, per row)."""
    if device.type == "cuda" or not options.fresh_processes:
        return lambda function, *args: function(*args)
    return in_fresh_process


def _train_row(root, options, width_mult, mode):
    """SGAN's training step in one configuration."""
    device = resolve_device(options.device)
    precision = mode.removesuffix(CHANNELS_LAST)
    cfg = bench_config(root, options, batch_size=options.batch, width_mult=width_mult,
                       amp=PRECISIONS[precision], channels_last=mode.endswith(CHANNELS_LAST),
                       max_iter=options.warmup + options.steps)
    seconds, peak, peak_kind = time_training(SGANTraining(), cfg, options, device)
    flops = training_flops(width_mult, options.size, options.batch)
    return {"width_mult": width_mult, "mode": mode, "batch": options.batch, "s_per_iter": seconds,
            "peak_memory_bytes": peak, "peak_memory_kind": peak_kind,
            **throughput(flops, seconds, device, precision)}


def bench_train(root, options, device):
    """One row per (width_mult, mode), each run by :func:`row_runner`."""
    configs = [(w, mode) for w in options.widths for mode in options.modes]
    run = row_runner(options, device)
    return [run(_train_row, root, options, w, mode) for w, mode in configs]


def peak_memory_cell(row):
    return f"{mebibytes(row['peak_memory_bytes'])} ({row['peak_memory_kind']})"


def mfu_cell(row):
    return "-" if row["mfu"] is None else f"{100 * row['mfu']:.1f}%"


def train_table(rows):
    body = [[r["width_mult"], r["mode"], r["batch"], f"{r['s_per_iter']:.3f}",
             peak_memory_cell(r), f"{r['flops_per_iter'] / 1e9:.4g}", f"{r['tflops_per_s']:.3g}",
             mfu_cell(r)] for r in rows]
    return ("\ntraining step\n" + format_table(
        ["width_mult", "mode", "batch", "s/iter", "peak MiB", "GFLOP/iter", "TFLOP/s", "MFU"],
        body))
