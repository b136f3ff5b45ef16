"""Benchmarks of every stage at the paper's input size (``tools/bench.py``, ``make bench``).

Synthetic VOC-sized images (lib.dataset.synthetic) go through each stage, measured against
the published implementation's way where it differed:
- data: training samples per second per loader worker and bytes per collated batch, for a
  published-style loader (scipy zooms, float32 image and the two N x N attention masks per
  sample), the default float32 items and the uint8 items that training uses;
- train: seconds per iteration, peak memory, FLOPs per iteration counted from the layer
  shapes, achieved FLOP/s and, on CUDA, MFU against the device's peak;
- infer: seed inference images per second end to end (lib.stage2.infer_cam.run);
- eval: label PNGs per second against a one-file-at-a-time PIL + np.bincount loop.
"""
import concurrent.futures
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from torch.utils.data import default_collate

from lib.config import load_config
from lib.dataset.synthetic import generate_dataset
from lib.dataset.tags import load_tags, save_tags
from lib.dataset.voc12_sgan import (NUM_FG_CLASSES, SEED_IGNORE, VOC12ClsSalDataset,
                                    feature_size, multi_hot, normalise_image, read_grey,
                                    read_image, scipy_zoom_to)
from lib.errors import UserError
from lib.evaluate import default_workers, evaluate_folder, read_label_png, read_prediction_png
from lib.network.checkpoint import save_state_dict
from lib.network.sgan import SGAN
from lib.optim import build_optimizer, poly_lr, set_lr
from lib.seeds import seed_to_image_size, seeds_from_cams
from lib.stage2 import infer_cam
from lib.stage2.train_sgan import SGANTraining
from lib.training import build_train_loader, prepare_batch, training_step
from lib.utils.distributed import DistContext
from lib.utils.io import encode_png, write_png
from lib.utils.runtime import amp_dtype, resolve_device

STAGES = ("data", "train", "infer", "eval")
PRECISIONS = {"fp32": "off", "bf16": "bf16", "fp16": "fp16"}  # mode name -> config key amp
CHANNELS_LAST = "-cl"  # mode suffix: channels_last memory format
SEED_CLASSES = 22
# Dense peak TFLOP/s by device name (first match wins): bf16/fp16 tensor cores, TF32 tensor
# cores (what cuDNN uses for float32 convolutions by default) and plain fp32.
PEAK_TFLOPS = (
    ("H200", {"bf16": 989.0, "tf32": 494.5, "fp32": 66.9}),
    ("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    ("H100 NVL", {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    ("H100", {"bf16": 989.0, "tf32": 494.5, "fp32": 66.9}),
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
)


@dataclass
class BenchOptions:
    """What to measure and how much; :func:`default_options` fills in per device."""

    device: str = "auto"
    stages: tuple = STAGES
    size: int = 321                 # S, the network input side
    images: int = 64                # synthetic images generated
    min_side: int = 375             # their sides, pixels (VOC: about 500 x 375)
    max_side: int = 500
    batch: int = 15                 # training batch of the train stage
    data_batch: int = 15            # batch of the data stage (the paper's)
    workers: int = 1                # loader worker processes
    data_batches: int = 4           # timed batches per loader
    widths: tuple = (1.0,)          # width_mult values (train and infer)
    modes: tuple = ("fp32", "bf16", "fp32-cl", "bf16-cl")
    warmup: int = 3                 # untimed training iterations
    steps: int = 10                 # timed training iterations
    infer_images: int = 64
    infer_batch_sizes: tuple = (1, 8)
    eval_images: int = 10582
    eval_workers: int = field(default_factory=default_workers)
    work_dir: str = None            # keep the generated files here (default: a temporary folder)


def bench_device(name):
    """The torch device for ``--device`` (auto, cpu, cuda, cuda:N); UserError if unusable."""
    try:
        device = resolve_device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available here")
    return device


def default_options(device="auto", quick=False):
    """The paper-sized benchmark on CUDA, a CPU-sized one on CPU, or (``quick``) a tiny one."""
    options = BenchOptions(device=device)
    if bench_device(device).type == "cpu":
        options = replace(options, batch=2, widths=(0.25, 1.0), modes=("fp32", "fp32-cl"),
                          warmup=1, steps=2, infer_images=12, infer_batch_sizes=(1, 4),
                          eval_images=1500)
    if quick:
        options = replace(options, size=65, images=6, min_side=64, max_side=96, batch=2,
                          data_batch=2, data_batches=2, widths=(0.125,), modes=("fp32",),
                          warmup=1, steps=1, infer_images=4, infer_batch_sizes=(2,),
                          eval_images=24, eval_workers=min(2, options.eval_workers))
    return options


def check_options(options):
    """UserError (one line) for options the benchmark cannot run."""
    device = bench_device(options.device)
    unknown = [s for s in options.stages if s not in STAGES]
    if unknown:
        raise UserError(f"unknown stage {unknown[0]!r}; stages are {', '.join(STAGES)}")
    for mode in options.modes:
        precision = mode.removesuffix(CHANNELS_LAST)
        if precision not in PRECISIONS:
            raise UserError(f"unknown mode {mode!r}; modes are fp32, bf16, fp16, each "
                            f"optionally with {CHANNELS_LAST} (channels_last)")
        if precision != "fp32" and device.type != "cuda":
            raise UserError(f"mode {mode} needs CUDA (mixed precision runs on CUDA only)")
    if options.size < 8 or min(options.batch, options.data_batch, options.images,
                               options.steps, options.eval_images) < 1 or options.workers < 0:
        raise UserError("size must be >= 8, batch, images, steps and eval_images >= 1, "
                        "workers >= 0")
    if not 24 <= options.min_side < options.max_side:
        raise UserError(f"image sides must satisfy 24 <= min < max, got {options.min_side}, "
                        f"{options.max_side}")
    if not all(0 < w <= 1 for w in options.widths):
        raise UserError(f"width_mult values must be in (0, 1], got {list(options.widths)}")


# ---- data loading ----------------------------------------------------------------------

class PublishedStyleDataset(VOC12ClsSalDataset):
    """For comparison only: training items made the way the published loader makes them.

    scipy.ndimage.zoom for every resize, a float32 image, and per sample the two N x N
    float32 attention matrices of SPEC section 3 built with NumPy: ``fg_pairs`` F = s s^T
    and ``bg_average`` B = (1-s)(1-s)^T / (sum(1-s) + 1e-5). The other keys equal
    VOC12ClsSalDataset's.
    """

    def __getitem__(self, index):
        name = self.samples[index]
        s, h = self.new_size, self.feat_size
        image = read_image(self.image_path(name))
        size = image.shape[:2]
        image = normalise_image(scipy_zoom_to(image, (s, s), 1), self.mean, self.std)
        sal = scipy_zoom_to(read_grey(self.sal_path(name)), (s, s), 1)
        seed = scipy_zoom_to(read_grey(self.seed_path(name)), (s, s), 0)
        if self.mirror and np.random.default_rng((self.flip_seed, index)).random() < 0.5:
            image, sal, seed = image[:, :, ::-1], sal[:, ::-1], seed[:, ::-1]
        small = scipy_zoom_to(np.ascontiguousarray(sal), (h, h), 1).astype(np.float64) / 255.0
        mask = (small > self.sal_thresh).astype(np.float32)
        mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 0
        seed = scipy_zoom_to(np.ascontiguousarray(seed), (h, h), 0).astype(np.int64)
        seed = np.where((seed >= 1) & (seed <= NUM_FG_CLASSES), seed - 1, SEED_IGNORE)
        fg = mask.reshape(-1, 1)
        bg = 1.0 - fg
        return {
            "name": name,
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "label": torch.from_numpy(multi_hot(self.tags[name])),
            "sal": torch.from_numpy(mask.astype(np.uint8)),
            "seed": torch.from_numpy(seed),
            "size": torch.tensor(size, dtype=torch.int64),
            "fg_pairs": torch.from_numpy(np.dot(fg, fg.T)),
            "bg_average": torch.from_numpy(np.dot(bg, bg.T) / (bg.sum() + 1e-5)),
        }


LOADERS = (  # (key, description, dataset class, keyword arguments)
    ("published", "published-style: scipy, float32, N x N masks", PublishedStyleDataset, {}),
    ("float32", "this repository, float32 items (default)", VOC12ClsSalDataset, {}),
    ("uint8", "this repository, uint8 items (training)", VOC12ClsSalDataset,
     {"normalise": False}),
)


def batch_bytes(batch):
    """Bytes of the tensors in a collated batch."""
    return sum(v.numel() * v.element_size() for v in batch.values() if torch.is_tensor(v))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _loader_row(dataset, cfg, options, device):
    loader = build_train_loader(dataset, cfg, DistContext(0, 1, device))
    batches = iter(loader)
    first = next(batches)  # starts the workers
    start = time.perf_counter()
    for _ in range(options.data_batches):
        next(batches)
    elapsed = time.perf_counter() - start
    del batches, loader
    prepare_batch(first, cfg, device)
    _sync(device)
    start = time.perf_counter()
    prepare_batch(first, cfg, device)
    _sync(device)
    to_device = time.perf_counter() - start
    samples = options.data_batches * options.data_batch
    return {"samples_per_s_per_worker": samples / elapsed / max(options.workers, 1),
            "batch_bytes": batch_bytes(first), "to_device_ms": 1e3 * to_device}


def bench_data(root, options, device):
    """Samples/s per worker, bytes per batch and batch-to-device time of each loader."""
    cfg = _config(root, options, batch_size=options.data_batch, num_worker=options.workers)
    samples = (options.data_batches + 1) * options.data_batch
    rows = {}
    for key, _, dataset_class, kwargs in LOADERS:
        dataset = dataset_class(root, cfg.cue_file, max_iters=samples, new_size=options.size,
                                mean=cfg.mean, std=cfg.std, **kwargs)
        rows[key] = _loader_row(dataset, cfg, options, device)
    published, ours = rows["published"], rows["uint8"]
    return {"batch": options.data_batch, "workers": options.workers, "loaders": rows,
            "speedup": ours["samples_per_s_per_worker"] / published["samples_per_s_per_worker"],
            "bytes_ratio": published["batch_bytes"] / ours["batch_bytes"]}


# ---- training step ---------------------------------------------------------------------

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
    cfg = _config(root, options, batch_size=options.batch, width_mult=width_mult,
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
            _sync(device)
            start = time.perf_counter()
        set_lr(optimizer, poly_lr(cfg.lr, iteration, cfg.max_iter, cfg.power))
        training_step(task, model, optimizer, scaler, prepare_batch(batch, cfg, device), cfg, ctx,
                      dtype)
    _sync(device)
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


# ---- seed inference --------------------------------------------------------------------

def seed_output_ms(root, work, subset, size):
    """Milliseconds per image of inference's CPU part: threshold seeds from (random) class
    maps, their zoom to the image size, and the PNG write; the zoom also by scipy."""
    rng = np.random.default_rng(0)
    h = feature_size(size)
    jobs = [(name, classes, Image.open(os.path.join(root, "JPEGImages", name + ".jpg")).size[::-1])
            for name, classes in subset.items()]
    total = zoom = scipy_zoom = 0.0
    for name, classes, image_size in jobs:
        maps = rng.standard_normal((NUM_FG_CLASSES, h, h)).astype(np.float32)
        start = time.perf_counter()
        mask = seeds_from_cams(maps, classes, rng.random((h, h)) < 0.3)
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
            cfg = _config(root, options, cue_file=cue_file, new_size=options.size,
                          width_mult=width_mult, checkpoint=checkpoint,
                          test_batch_size=test_batch_size, num_worker=options.workers,
                          res_path=os.path.join(work, "result"), overwrite=True)
            start = time.perf_counter()
            infer_cam.run(cfg)
            elapsed = time.perf_counter() - start
            rows.append({"width_mult": width_mult, "test_batch_size": test_batch_size,
                         "images": len(subset), "images_per_s": len(subset) / elapsed})
    return {"runs": rows, "seed_output_ms": seed_output_ms(root, work, subset, options.size)}


# ---- evaluation ------------------------------------------------------------------------

def make_eval_folders(root, work, count):
    """``count`` (prediction, ground truth) PNG pairs made from the synthetic ground truth:
    grey seed-like predictions (written as the seed writer does) and palette ground truth."""
    gt_dir = os.path.join(root, "SegmentationClassAug")
    sources = sorted(f for f in os.listdir(gt_dir) if f.endswith(".png"))
    pred_out, gt_out = os.path.join(work, "eval_pred"), os.path.join(work, "eval_gt")
    for folder in (pred_out, gt_out):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    encoded = []
    for source in sources:
        gt = read_label_png(os.path.join(gt_dir, source))
        shifted = np.roll(gt, 9, axis=1)  # a prediction off by a few pixels
        pred = np.where((gt == 255) | (shifted == 255), SEED_CLASSES - 1, shifted).astype(np.uint8)
        encoded.append((encode_png(pred), os.path.join(gt_dir, source)))
    for i in range(count):
        data, gt_file = encoded[i % len(encoded)]
        name = f"bench_{i:06d}.png"
        with open(os.path.join(pred_out, name), "wb") as f:
            f.write(data)
        shutil.copyfile(gt_file, os.path.join(gt_out, name))
    return pred_out, gt_out


def one_by_one_confusion(res_path, gt_path, num_classes):
    """The baseline: each file pair read with PIL in turn, counted with np.bincount."""
    n = num_classes
    matrix = np.zeros((n, n), np.int64)
    for file in sorted(os.listdir(res_path)):
        pred = np.array(Image.open(os.path.join(res_path, file)))
        gt = np.array(Image.open(os.path.join(gt_path, file)))
        counted = gt < n
        index = n * gt[counted].astype(np.int64) + pred[counted]
        matrix += np.bincount(index, minlength=n * n).reshape(n, n)
    return matrix


def _decode_ms(folder, reader, limit=200):
    files = sorted(os.listdir(folder))[:limit]
    start = time.perf_counter()
    for file in files:
        reader(os.path.join(folder, file))
    return 1e3 * (time.perf_counter() - start) / len(files)


def bench_eval(root, work, options):
    """Files/s of the baseline loop, of evaluate_folder in one process and in
    ``eval_workers`` processes (their matrices must agree), and per-file decode times."""
    res, gt = make_eval_folders(root, work, options.eval_images)
    start = time.perf_counter()
    baseline = one_by_one_confusion(res, gt, SEED_CLASSES)
    rates = {"one_by_one": options.eval_images / (time.perf_counter() - start)}
    for key, workers in (("ours_1_process", 0), ("ours_parallel", options.eval_workers)):
        start = time.perf_counter()
        result = evaluate_folder(res, gt, SEED_CLASSES, workers=workers, progress=False)
        rates[key] = options.eval_images / (time.perf_counter() - start)
        if not np.array_equal(result["matrix"], baseline):
            raise UserError(f"evaluate_folder ({key}) disagrees with the baseline loop")
    decode = {"pil": _decode_ms(res, lambda path: np.asarray(Image.open(path))),
              "ours": _decode_ms(res, read_prediction_png)}
    return {"files": options.eval_images, "num_classes": SEED_CLASSES,
            "workers": options.eval_workers, "files_per_s": rates,
            "speedup": rates["ours_parallel"] / rates["one_by_one"],
            "prediction_decode_ms": decode}


# ---- the whole benchmark ---------------------------------------------------------------

def _config(root, options, **overrides):
    return load_config(None, {"dataset_root": root, "pretrain": None, "resize": options.size,
                              "device": options.device, **overrides})


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
                  "eval": lambda: bench_eval(root, work, options)}
        for stage in STAGES:
            if stage in options.stages:
                results[stage] = stages[stage]()
                report(TABLES[stage](results[stage]))
    return results


# ---- tables ----------------------------------------------------------------------------

def format_table(headers, rows):
    """A plain Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _mb(n):
    return f"{n / 2 ** 20:.1f}"


def data_table(data):
    rows = []
    for key, description, _, _ in LOADERS:
        row = data["loaders"][key]
        rows.append([description, f"{row['samples_per_s_per_worker']:.1f}",
                     _mb(row["batch_bytes"]), f"{row['to_device_ms']:.1f}"])
    return (f"\ndata loading: batch {data['batch']}, {data['workers']} worker(s)\n"
            + format_table(["loader", "samples/s per worker", "MiB per batch",
                            "batch to device, ms"], rows)
            + f"\nuint8 items vs published-style: {data['speedup']:.1f}x the samples/s, "
              f"{data['bytes_ratio']:.0f}x fewer bytes per batch")


def train_table(rows):
    body = [[r["width_mult"], r["mode"], r["batch"], f"{r['s_per_iter']:.3f}",
             f"{_mb(r['peak_memory_bytes'])} ({r['peak_memory_kind']})",
             f"{r['flops_per_iter'] / 1e9:.4g}", f"{r['tflops_per_s']:.3g}",
             "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"] for r in rows]
    return ("\ntraining step\n" + format_table(
        ["width_mult", "mode", "batch", "s/iter", "peak MiB", "GFLOP/iter", "TFLOP/s", "MFU"],
        body))


def infer_table(result):
    body = [[r["width_mult"], r["test_batch_size"], r["images"], f"{r['images_per_s']:.2f}"]
            for r in result["runs"]]
    seeds = result["seed_output_ms"]
    return ("\nseed inference, end to end (decode, network, seeds, PNG)\n"
            + format_table(["width_mult", "test_batch_size", "images", "images/s"], body)
            + f"\nthreshold seeds + zoom to image size + PNG write: {seeds['total']:.2f} ms per "
              f"image on the CPU (of which zoom {seeds['zoom']:.2f} ms; by scipy "
              f"{seeds['zoom_scipy']:.2f} ms)")


def eval_table(result):
    rates = result["files_per_s"]
    body = [["one file at a time, PIL + np.bincount", f"{rates['one_by_one']:.0f}"],
            ["evaluate_folder, 1 process", f"{rates['ours_1_process']:.0f}"],
            [f"evaluate_folder, {result['workers']} processes", f"{rates['ours_parallel']:.0f}"]]
    decode = result["prediction_decode_ms"]
    return (f"\nevaluation: {result['files']} label PNG pairs, {result['num_classes']} classes\n"
            + format_table(["method", "files/s"], body)
            + f"\n{result['speedup']:.1f}x the baseline; grey prediction PNG decode "
              f"{decode['pil']:.2f} ms (PIL) vs {decode['ours']:.2f} ms (read_prediction_png)")


TABLES = {"data": data_table, "train": train_table, "infer": infer_table, "eval": eval_table}
