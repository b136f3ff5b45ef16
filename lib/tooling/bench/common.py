"""Benchmark options, their checks and what every stage shares (config, tables)."""
from dataclasses import dataclass, field, replace

import torch

from lib.config import load_config
from lib.dataset.description import dataset_description
from lib.errors import UserError
from lib.training.runtime import available_cores, resolve_device
from lib.workers import default_workers

STAGES = ("data", "train", "infer", "eval", "seg_crf", "seg_infer", "seg_train")
SEG_STAGES = ("seg_crf", "seg_infer", "seg_train")  # stage 3: S must be a crop size (8k + 1)
PRECISIONS = {"fp32": "off", "bf16": "bf16", "fp16": "fp16"}  # mode name -> config key amp
CHANNELS_LAST = "-cl"  # mode suffix: channels_last memory format


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
    crf_workers: int = field(default_factory=available_cores)  # W of the stage-3 stages
    crf_batch: int = 15             # images of the seg_crf batch (the published batch)
    crf_repeats: int = 10           # timed batches of seg_crf, each way
    seg_infer_images: int = 32      # images of seg_infer with the CRF workers
    seg_serial_images: int = 8      # images of seg_infer's serial ways (their rate is per image)
    seg_batch: int = 8              # test_batch_size of seg_infer's batched ways
    work_dir: str = None            # keep the generated files here (default: a temporary folder)
    dataset_name: str = "voc12_sgan"  # the class count of seeds, the batch CRF and inference
    fresh_processes: bool = True    # CPU training rows each in a fresh process (own peak memory)


def bench_dataset(options):
    """The dataset description whose class count the seed, CRF and inference stages use."""
    return dataset_description(options.dataset_name)


def peak_memory():
    """{"peak_rss_mib", "peak_worker_rss_mib"}: the largest resident set so far of this
    process and of its largest finished child (worker processes), MiB (Linux counts KiB)."""
    import resource

    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def memory_text(result):
    return (f"peak memory: {result['peak_rss_mib']:.0f} MiB in this process, "
            f"{result['peak_worker_rss_mib']:.0f} MiB in its largest worker process")


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
                          eval_images=1500, seg_infer_images=8, seg_serial_images=4,
                          seg_batch=4)
    if quick:
        options = replace(options, size=65, images=6, min_side=64, max_side=96, batch=2,
                          data_batch=2, data_batches=2, widths=(0.125,), modes=("fp32",),
                          warmup=0, steps=1, infer_images=4, infer_batch_sizes=(2,),
                          eval_images=24, eval_workers=min(2, options.eval_workers),
                          crf_repeats=2, seg_infer_images=3, seg_serial_images=2, seg_batch=2,
                          fresh_processes=False)
    return options


# The options of tools/bench.py that replace default_options' values when given ("batch" also
# sets "data_batch").
GIVEN_OPTIONS = ("stages", "batch", "size", "workers", "widths", "modes", "eval_images",
                 "crf_workers", "seg_batch", "work_dir", "dataset_name")
# Image sides of the synthetic images by dataset (VOC about 500 x 375, COCO 640 x 480).
DATASET_SIDES = {"coco14": (480, 640)}


def options_from_arguments(args):
    """The BenchOptions of tools/bench.py's parsed ``args``: default_options for its device
    (and ``quick``), with the GIVEN_OPTIONS it sets."""
    given = {key: getattr(args, key) for key in GIVEN_OPTIONS}
    given["data_batch"] = args.batch
    if args.dataset_name in DATASET_SIDES and not args.quick:
        given["min_side"], given["max_side"] = DATASET_SIDES[args.dataset_name]
    return replace(default_options(args.device, args.quick),
                   **{key: value for key, value in given.items() if value is not None})


def comma_list(kind):
    """An argparse type: ``"a,b"`` -> (kind(a), kind(b)), non-empty."""
    import argparse

    def parse(text):
        try:
            values = tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            values = ()
        if not values:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        return values
    return parse


def check_options(options):
    """UserError (one line) for options the benchmark cannot run."""
    device = bench_device(options.device)
    bench_dataset(options)  # a misspelt --dataset_name: one line with the nearest name
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
                               options.steps, options.eval_images, options.crf_workers,
                               options.crf_batch, options.crf_repeats, options.seg_infer_images,
                               options.seg_serial_images, options.seg_batch) < 1 \
            or options.workers < 0:
        raise UserError("size must be >= 8, batch, images, steps, eval_images, crf_workers, "
                        "crf_batch, crf_repeats, seg_infer_images, seg_serial_images and "
                        "seg_batch >= 1, workers >= 0")
    if (options.size - 1) % 8 and set(SEG_STAGES) & set(options.stages):
        raise UserError(f"the stage-3 stages need a size of 8k + 1 (a crop size, e.g. 321), "
                        f"got {options.size}")
    if max(options.seg_infer_images, options.seg_serial_images) > options.images:
        raise UserError(f"seg_infer_images ({options.seg_infer_images}) and seg_serial_images "
                        f"({options.seg_serial_images}) must be <= images ({options.images})")
    if not 24 <= options.min_side < options.max_side:
        raise UserError(f"image sides must satisfy 24 <= min < max, got {options.min_side}, "
                        f"{options.max_side}")
    if not all(0 < w <= 1 for w in options.widths):
        raise UserError(f"width_mult values must be in (0, 1], got {list(options.widths)}")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_config(root, options, **overrides):
    return load_config(None, {"dataset_root": root, "pretrain": None, "resize": options.size,
                              "device": options.device, **overrides})


def format_table(headers, rows):
    """A plain Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def mebibytes(n):
    return f"{n / 2 ** 20:.1f}"
