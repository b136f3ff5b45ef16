"""Training step: seconds per iteration, peak memory, FLOPs counted from the layer shapes, MFU."""
import concurrent.futures
import multiprocessing
import resource
import time

import torch
import torch.nn as nn
from torch.utils.data import default_collate

from lib.network.sgan import SGAN
from lib.optim import build_optimizer, poly_lr, set_lr
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

PEAK_TFLOPS = (
    ("H200", {"bf16": 989.0, "tf32": 494.5, "fp32": 66.9}),
    ("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    ("H100 NVL", {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    ("H100", {"bf16": 989.0, "tf32": 494.5, "fp32": 66.9}),
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
)




def forward_flops(width_mult, size, batch):
    """FLOPs of one SGAN forward pass, counted from the layer shapes.

    Every convolution costs 2 * Cin * Cout * k * k * Hout * Wout per image (shapes from a
    pass on the meta device), the attention its two batched matrix products, Q^T K
    (2 N^2 Ck) and V A^T (2 C N^2). Element-wise work is not counted.
    """
    with torch.device("meta"):
        model = SGAN(width_mult=width_mult).eval()
    flops = []

    def count(module, _, out):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        flops.append(2 * out.numel() * module.in_channels // module.groups * kernel)

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(count)
    with torch.no_grad():
        features = model.backbone(torch.empty(batch, 3, size, size, device="meta"))
        model.f_query(features)
        model.f_key(features)
        model.fc9(features)
        model.fc8(model.fc6_CAM(features))
    n, channels, h, w = features.shape
    attention = 2 * n * (h * w) ** 2 * (model.f_query.out_channels + channels)
    return sum(flops) + attention


def training_flops(width_mult, size, batch):
    """FLOPs of one training iteration: forward + backward = 3 x the forward."""
    return 3 * forward_flops(width_mult, size, batch)


def peak_tflops(device_name, precision):
    """The device's dense peak TFLOP/s for ``precision`` (fp32 as TF32 when cuDNN allows it),
    or None for a device not in PEAK_TFLOPS."""
    for key, peaks in PEAK_TFLOPS:
        if key in device_name:
            if precision in ("bf16", "fp16"):
                return peaks["bf16"]
            return peaks["tf32"] if torch.backends.cudnn.allow_tf32 else peaks["fp32"]
    return None


def _train_row(root, options, width_mult, mode):
    """Time ``options.steps`` training iterations (after ``warmup``) of one configuration."""
    device = resolve_device(options.device)
    precision = mode.removesuffix(CHANNELS_LAST)
    cfg = bench_config(root, options, batch_size=options.batch, width_mult=width_mult,
                  amp=PRECISIONS[precision], channels_last=mode.endswith(CHANNELS_LAST),
                  max_iter=options.warmup + options.steps)
    task = SGANTraining()
    dataset = task.build_dataset(cfg)
    batch = default_collate([dataset[i] for i in range(options.batch)])
    torch.manual_seed(cfg.random_seed)
    model = task.build_model(cfg, None)
    memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
    model.to(device, memory_format=memory_format).train()
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    dtype = amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    ctx = DistContext(0, 1, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    for iteration in range(cfg.max_iter):
        if iteration == options.warmup:
            sync(device)
            start = time.perf_counter()
        set_lr(optimizer, poly_lr(cfg.lr, iteration, cfg.max_iter, cfg.power))
        training_step(task, model, optimizer, scaler, prepare_batch(batch, cfg, device), cfg, ctx,
                      dtype)
    sync(device)
    seconds = (time.perf_counter() - start) / options.steps
    if device.type == "cuda":
        peak, peak_kind = torch.cuda.max_memory_allocated(device), "cuda_max_allocated"
    else:
        peak, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "max_rss"
    flops = training_flops(width_mult, options.size, options.batch)
    row = {"width_mult": width_mult, "mode": mode, "batch": options.batch, "s_per_iter": seconds,
           "peak_memory_bytes": peak, "peak_memory_kind": peak_kind, "flops_per_iter": flops,
           "tflops_per_s": flops / seconds / 1e12, "peak_tflops": None, "mfu": None}
    if device.type == "cuda":
        row["peak_tflops"] = peak_tflops(torch.cuda.get_device_name(device), precision)
        if row["peak_tflops"]:
            row["mfu"] = row["tflops_per_s"] / row["peak_tflops"]
    return row


def bench_train(root, options, device):
    """One row per (width_mult, mode). On CPU each runs in a fresh process, so that its
    maximum resident set size is its own."""
    configs = [(w, mode) for w in options.widths for mode in options.modes]
    if device.type == "cuda":
        return [_train_row(root, options, w, mode) for w, mode in configs]
    rows = []
    for w, mode in configs:
        with concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows.append(pool.submit(_train_row, root, options, w, mode).result())
    return rows


def train_table(rows):
    body = [[r["width_mult"], r["mode"], r["batch"], f"{r['s_per_iter']:.3f}",
             f"{mebibytes(r['peak_memory_bytes'])} ({r['peak_memory_kind']})",
             f"{r['flops_per_iter'] / 1e9:.4g}", f"{r['tflops_per_s']:.3g}",
             "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"] for r in rows]
    return ("\ntraining step\n" + format_table(
        ["width_mult", "mode", "batch", "s/iter", "peak MiB", "GFLOP/iter", "TFLOP/s", "MFU"],
        body))
