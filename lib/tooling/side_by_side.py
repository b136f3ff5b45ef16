"""Independent trainings at once, each in its own process on its share of the CPU's cores.

The demo's networks are small: on a CPU a second thread speeds one training up by about 1.4x,
while two trainings side by side, one core each, finish about 1.4x sooner than the same two one
after the other (the demo's two segmentation networks on 2 cores: 0.19 s per iteration each
side by side, against 0.13 s alone with both cores). Each process writes its console output
(progress bar, log lines, errors) to ``<run folder>.console.txt`` beside its run folder, so
the bars do not fight over one terminal; the run's ``train.log`` has its log lines as usual.
"""
import contextlib
import importlib
import multiprocessing
import os

import torch

from lib.cli import run_main
from lib.errors import UserError
from lib.paths import model_dir
from lib.training.runtime import available_cores


def console_path(cfg):
    """Where the process training ``cfg`` writes its console output."""
    return model_dir(cfg) + ".console.txt"


def _train_alone(step_module, cfg, threads):
    """A spawned process's whole work: ``threads`` threads, ``step_module.run(cfg)``, its
    console output to console_path(cfg); a user's error or Ctrl-C ends it as in a script."""
    def train(argv):
        importlib.import_module(step_module).run(cfg)  # exit 0, whatever run returns

    torch.set_num_threads(threads)
    os.makedirs(os.path.dirname(console_path(cfg)) or ".", exist_ok=True)
    with open(console_path(cfg), "w") as console, contextlib.redirect_stderr(console), \
            contextlib.redirect_stdout(console):
        run_main(train)


def _last_line(path):
    """The last non-empty line a process wrote (progress bars end lines with \\r too)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return "no output"
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines()]
    return next((line for line in reversed(lines) if line), "no output")


def train_side_by_side(step_module, cfgs, logger):
    """Run ``step_module.run(cfg)`` for every config of ``cfgs`` at once, one spawned process
    each with an equal share of the cores; a one-line UserError naming the run and its console
    file if one of them fails (the others finish first)."""
    threads = max(1, available_cores() // len(cfgs))
    logger.info("training %s side by side (%d thread(s) each); their progress: %s",
                ", ".join(cfg.cfg_name for cfg in cfgs), threads,
                ", ".join(console_path(cfg) for cfg in cfgs))
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=_train_alone, args=(step_module, cfg, threads))
                 for cfg in cfgs]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join()
    for cfg, process in zip(cfgs, processes):
        if process.exitcode != 0:
            raise UserError(f"training {cfg.cfg_name} failed ({_last_line(console_path(cfg))}); "
                            f"its output: {console_path(cfg)}")
    for cfg in cfgs:
        os.remove(console_path(cfg))
