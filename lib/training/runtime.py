"""Run-time set-up shared by the pipeline steps: device, logging, mixed precision."""
import logging
import os
import sys

import torch
from tqdm import tqdm

from lib.config import ConfigError


def resolve_device(name="auto"):
    """``auto`` -> CUDA when available, else CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_device(name):
    """ConfigError in one line if config key ``device`` asks for a CUDA device torch cannot
    see (the key's spelling is checked by lib.config)."""
    if not name.startswith("cuda"):
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(name.partition(":")[2] or 0)
    if index >= count:
        seen = f"{count} CUDA devices (cuda:0..cuda:{count - 1})" if count else "no CUDA device"
        raise ConfigError(f"config key 'device' is '{name}' but torch sees {seen} here: use "
                          f"device=cpu, or auto (CUDA when there is one)")


class _TqdmHandler(logging.Handler):
    """Console output that does not break tqdm progress bars."""

    def emit(self, record):
        tqdm.write(self.format(record), file=sys.stderr)


def process_logger(name, log_file, is_main):
    """The main process's logger (console and ``log_file``); other processes log nothing."""
    if is_main:
        return setup_logger(name, log_file)
    silent = logging.getLogger(name + ".worker")
    silent.disabled = True
    return silent


def setup_logger(name, log_file=None):
    """A logger printing to stderr and, if given, appending to ``log_file``."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [_TqdmHandler()]
    if log_file:
        os.makedirs(os.path.dirname(log_file) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


_AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(amp, device):
    """The autocast dtype for config key ``amp`` (None = full precision; CUDA only)."""
    return _AMP_DTYPES[amp] if device.type == "cuda" else None


def autocast(dtype, device):
    """An autocast context for ``dtype``, or a disabled one when ``dtype`` is None."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def available_cores():
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this OS
        return os.cpu_count() or 1


def usable_workers(requested, ctx):
    """``requested`` worker processes, at most this process's share of the cores (the job's
    processes share them)."""
    return max(0, min(requested, available_cores() // ctx.world_size))


def loader_workers(cfg, ctx, logger):
    """``num_worker`` loader processes, at most this process's share of the cores (more only
    compete for them); says so once in the log when it caps the key."""
    workers = usable_workers(cfg.num_worker, ctx)
    if workers < cfg.num_worker:
        logger.info("num_worker %d -> %d: %d cores for %d process(es) of this job",
                    cfg.num_worker, workers, available_cores(), ctx.world_size)
    return workers
