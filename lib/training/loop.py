"""The training loop shared by every stage: the classifier, SGAN and the segmentation network.

One loop for one process, torchrun or self-spawned processes. The global batch is
``batch_size`` whatever the number of processes: each process takes its share of every
global batch, and a task's loss is that share's part of the global batch's loss, so
DistributedDataParallel's gradient average (times the number of processes) equals the
gradient of the whole batch's loss (what the log shows). Checkpoints every ``step_size``
iterations and at the end, and resuming from them: lib/training/checkpointing.py; the run's
folder, which a new run takes only from no other run (or replaces, with ``overwrite``, once it
has built its network): lib/training/run_folder.py. A run stops with one line, its last
checkpoint intact, if the loss is NaN or infinite, if fp16's gradient scaler skips too many
steps in a row, or if the loader ends before ``max_iter``. Ctrl-C or SIGTERM stops it at the
end of the iteration under way, its train state saved there, with the command that resumes
it (lib/training/interrupt.py). Its log ends with how it ended.
A task's loader may ship uint8 images; they are normalised on the device (prepare_batch).
"""
import math
import os
import signal
import time
from dataclasses import dataclass

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from lib import signal_point
from lib.cli import resume_command
from lib.dataset.sampler import GlobalBatchSampler
from lib.errors import Interrupted, UserError
from lib.network.checkpoint import load_backbone
from lib.normalisation import normalise_on_device
from lib.optim import build_optimizer, poly_lr, set_lr
from lib.paths import check_dataset_paths, model_dir, pretrain_path
from lib.progress import progress_bar
from lib.training.checkpointing import (load_train_state, restore, resume_path, save_checkpoint,
                                        save_train_state)
from lib.training.distributed import barrier, launch, max_over_processes
from lib.training.interrupt import stop_requests
from lib.training.metrics import RunMetrics, Throughput, metric_columns
from lib.training.run_folder import (LOG_NAME, SET_ASIDE, SET_ASIDE_NOTE, TRAIN_STATE,
                                     claim_for_new_run, ending_line, finish_replacement,
                                     put_back, recover_set_aside, set_aside, write_record_once)
from lib.training.runtime import amp_dtype, loader_workers, process_logger
from lib.workers import ignore_stop_signals

MAX_SKIPPED_STEPS = 100  # fp16: training stops after this many skipped steps in a row


class TrainingTask:
    """What differs between trainings: model, data, loss, and what happens at the end."""

    name = "train"
    term_names = ("loss",)
    pretrain_key = "pretrain"  # the config key of the weights a fresh run starts from
    outputs = ()  # files besides checkpoints the run writes in its folder (overwrite removes)
    config_keys = None  # the keys the step reads (its run's config.yml); None: all of them

    def network(self, cfg):
        """The network the configuration describes, initialised (not yet loaded)."""
        raise NotImplementedError

    def load_pretrained(self, model, path):
        """Load the weights a fresh run starts from: a backbone (``vgg_init.pth``)."""
        load_backbone(model, path)

    def build_model(self, cfg, pretrain):
        """The network, loaded from ``pretrain`` (a path, or None: its own initialisation)."""
        model = self.network(cfg)
        if pretrain:
            self.load_pretrained(model, pretrain)
        return model

    def build_dataset(self, cfg):
        """The training dataset, its files checked (lib.dataset.check)."""
        raise NotImplementedError

    @staticmethod
    def sample_options(cfg):
        """Keyword arguments every stage-1/2 training set takes from the config: the name list
        repeated for max_iter global batches, flips seeded by random_seed, uint8 images (the
        loop normalises them on the device)."""
        return {"max_iters": cfg.max_iter * cfg.batch_size, "new_size": cfg.resize,
                "mirror": True, "mean": cfg.mean, "std": cfg.std, "flip_seed": cfg.random_seed,
                "normalise": False}

    def dataset_note(self, dataset):
        """Extra text for the log line that starts training, after the number of images."""
        return ""

    def normalisation(self, cfg):
        """(mean, std) of the device-side normalisation of uint8 images (lib.image)."""
        return cfg.mean, cfg.std

    def build_optimizer(self, model, cfg):
        """SGD over the four parameter groups (recipe 4)."""
        return build_optimizer(model, cfg.lr, cfg.weight_decay)

    def learning_rate(self, cfg, iteration):
        """The base learning rate of ``iteration`` (0, 1, ...): the poly schedule (recipe 4)."""
        return poly_lr(cfg.lr, iteration, cfg.max_iter, cfg.power)

    def start(self, cfg, ctx):
        """Called on every process before the first iteration (e.g. to start worker pools)."""

    def report(self, logger):
        """Log what the task found or chose before the first iteration (its data, its worker
        processes), after the line that starts training (only the main process's logger
        writes)."""

    def stop(self, failed):
        """Called on every process when training ends, also after an error (``failed``)."""

    def has_unused_parameters(self, cfg):
        """True if some parameters get no gradient (DistributedDataParallel must know)."""
        return False

    def loss(self, net, batch, cfg, ctx, dtype):
        """(loss, terms): this process's part of the global batch's loss, and the terms to
        log (a 1-D tensor whose sum over processes is the global batch's terms)."""
        raise NotImplementedError

    def status(self, model):
        """Extra text for the log line."""
        return ""

    def validates(self, cfg):
        """True if the run scores the network on held-out images while it trains."""
        return False

    def validate(self, model, cfg, ctx, logger, iteration):
        """{column: value} of the scores after ``iteration`` ({} when it is not the time),
        on every process; the model is in train mode again afterwards and the random streams
        of training are untouched."""
        return {}

    def finish(self, model, cfg, ctx, logger):
        """Called on every process after the last iteration."""


def build_train_loader(dataset, cfg, ctx, start_batch=0, workers=0):
    """This process's loader: its share of every global batch, from ``start_batch`` on, read by
    ``workers`` processes (which leave Ctrl-C and SIGTERM to the loop)."""
    sampler = GlobalBatchSampler(len(dataset), cfg.batch_size, cfg.random_seed, ctx.rank,
                                 ctx.world_size, start_batch)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                      pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(cfg.random_seed),
                      worker_init_fn=ignore_stop_signals)


def prepare_batch(batch, cfg, device, normalisation=None):
    """Move a collated batch to ``device``; a uint8 image (a loader built with
    ``normalise=False``) is normalised there with ``normalisation`` = (mean, std) (default the
    config's), and laid out channels-last if asked."""
    batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
             for k, v in batch.items()}
    if batch["image"].dtype == torch.uint8:
        mean, std = normalisation or (cfg.mean, cfg.std)
        batch["image"] = normalise_on_device(batch["image"], mean, std, cfg.channels_last)
    elif cfg.channels_last:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    return batch


class TrainingStopped(UserError):
    """Training cannot go on (the message says why; the loop adds where)."""


class NonFiniteLoss(TrainingStopped):
    """The loss became NaN or infinite."""


def training_step(task, net, optimizer, scaler, batch, cfg, ctx, dtype):
    """One optimisation step on a prepared batch; returns (logged terms as a dict, whether
    the weights were updated).

    A NaN or infinite loss raises NonFiniteLoss before touching the weights; with an fp16
    gradient scaler it is a skipped step instead, like the scaler's own skips of steps whose
    gradients overflow (its scale then drops).
    """
    loss, terms = task.loss(net, batch, cfg, ctx, dtype)
    terms = dict(zip(task.term_names, terms.tolist()))  # summed over processes: all agree
    if not all(math.isfinite(v) for v in terms.values()):
        if not scaler.is_enabled():
            raise NonFiniteLoss(f"loss is {terms['loss']}")
        return terms, False
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss * ctx.world_size).backward()  # DDP averages: undo its 1/world
    scale = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    return terms, scaler.get_scale() >= scale


class SkippedSteps:
    """fp16's skipped steps. A few while the gradient scaler finds its scale are normal; a
    long run of them means the weights no longer change, so training stops after ``limit``
    in a row."""

    def __init__(self, scaler, limit):
        self.scaler, self.limit = scaler, limit
        self.total = self.in_a_row = 0

    def record(self, stepped):
        """Count one step; raise TrainingStopped after ``limit`` skipped steps in a row."""
        self.in_a_row = 0 if stepped else self.in_a_row + 1
        self.total += not stepped
        if self.in_a_row >= self.limit:
            raise TrainingStopped(
                f"fp16: the last {self.in_a_row} steps were skipped for NaN or infinite "
                f"gradients or loss (loss scale now {self.scaler.get_scale():g}; amp=bf16 "
                f"needs no scaler)")

    def summary(self):
        """The log line's text: loss scale and steps skipped so far ("" without fp16)."""
        if not self.scaler.is_enabled():
            return ""
        return f" fp16 scale {self.scaler.get_scale():g} skipped {self.total}"


def train(cfg, task):
    """Run ``task`` for ``max_iter`` iterations on every process of the job."""
    launch(_Worker(task), cfg)


class _Worker:
    """A picklable ``worker(ctx, cfg)`` for :func:`lib.training.distributed.launch`."""

    def __init__(self, task):
        self.task = task

    def __call__(self, ctx, cfg):
        self.task.start(cfg, ctx)
        failed = True
        try:
            _train(ctx, cfg, self.task)
            failed = False
        finally:
            self.task.stop(failed)


def _train(ctx, cfg, task):
    check_dataset_paths(cfg, "cue_file")  # check the inputs before writing anything
    out_dir = model_dir(cfg)
    if ctx.is_main:
        recovered = recover_set_aside(out_dir)  # a replacement a kill cut short
        if recovered:
            process_logger(f"sgan.{task.name}", os.path.join(out_dir, LOG_NAME), True).info(
                "%s", recovered)
    barrier(ctx)  # every process sees the folder as rank 0 left it
    state_file = resume_path(cfg)
    state, changes = (load_train_state(state_file, cfg, task.config_keys) if state_file
                      else (None, []))
    pretrain = None if state_file else pretrain_path(cfg, task.pretrain_key)
    old_run = [] if state_file else claim_for_new_run(cfg, task.outputs)
    if state is not None and int(state["iteration"]) >= cfg.max_iter:
        run_dir = os.path.dirname(state_file)  # its log, not a new folder's
        process_logger(f"sgan.{task.name}", os.path.join(run_dir, LOG_NAME), ctx.is_main).info(
            "nothing to do: the run in %s is at iteration %d, max_iter is %d", run_dir,
            state["iteration"], cfg.max_iter)
        return
    dataset = task.build_dataset(cfg)
    torch.manual_seed(cfg.random_seed)  # the same initial weights on every process
    model = task.build_model(cfg, pretrain)  # refused here, the folder is still untouched
    barrier(ctx)  # every process has checked the folder before it changes
    if ctx.is_main:
        os.makedirs(out_dir, exist_ok=True)
    logger = process_logger(f"sgan.{task.name}", os.path.join(out_dir, LOG_NAME), ctx.is_main)
    begin = _Start(state_file, state, changes, pretrain, replaces=bool(old_run))
    try:
        if old_run:
            if ctx.is_main:
                set_aside(out_dir, old_run)
            logger.info("%s (now in %s) until this run's first checkpoint", SET_ASIDE_NOTE,
                        os.path.join(out_dir, SET_ASIDE))
        _run(ctx, cfg, task, dataset, model, logger, begin)
    except (Exception, KeyboardInterrupt) as exc:
        logger.info("%s", ending_line(exc))
        if begin.replaces and ctx.is_main and put_back(out_dir):
            logger.info("overwrite=true: this run stopped before its first checkpoint; the run "
                        "it was to replace is back in %s", out_dir)
        raise


@dataclass
class _Start:
    """Where a run starts: a train state to resume (its file, content and the run-time keys
    that changed) or the pretrained weights of a fresh run; ``replaces``: an old run is set
    aside until this run's first checkpoint."""

    state_file: str
    state: dict
    changes: list
    pretrain: str
    replaces: bool = False


@dataclass
class _Saves:
    """What a run saves: its checkpoints, and its train state where Ctrl-C or SIGTERM stopped
    it. The first save ends the replacement of a run set aside (``begin.replaces``)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    cfg: dict
    ctx: object
    begin: _Start
    logger: object
    last: int  # the iteration the train state on disk holds
    config_keys: frozenset = None  # the keys the run's record holds (TrainingTask.config_keys)

    def checkpoint(self, step):
        """``model_iter_<step>.pth`` and the train state (every process calls it)."""
        self._record()
        self.logger.info("saved %s", save_checkpoint(self.model, self.optimizer, step,
                                                     self.cfg, self.ctx))
        self._saved(step)

    def interrupted(self, step, signum):
        """Save the train state of iteration ``step`` unless the last checkpoint holds it;
        return the Interrupted that says where the run stopped and how to resume it. A run
        that replaces another saves nothing before its first checkpoint: the old run goes back
        (:func:`_train`), so Ctrl-C on an ``overwrite=true`` started by mistake loses nothing."""
        stopped = (f"interrupted by {signal.Signals(signum).name} at iteration {step} of "
                   f"{self.cfg.max_iter}")
        if self.begin.replaces:
            return Interrupted(f"{stopped}, before its first checkpoint: nothing saved, the run "
                               f"it was to replace is back in {model_dir(self.cfg)}", signum)
        if step > self.last:
            self._record()
            self.logger.info("saved %s", save_train_state(self.model, self.optimizer, step,
                                                          self.cfg, self.ctx))
            self._saved(step)
        path = os.path.join(model_dir(self.cfg), TRAIN_STATE)
        return Interrupted(f"{stopped}, saved in {path}: resume with: "
                           f"{resume_command(self.cfg.get('command_line'))}", signum)

    def _record(self):
        if self.ctx.is_main:  # the run's record, true from its first save on
            write_record_once(self.cfg, self.config_keys)

    def _saved(self, step):
        self.last = step
        if self.begin.replaces and self.ctx.is_main and finish_replacement(model_dir(self.cfg)):
            self.logger.info("overwrite=true: deleted the run set aside; this run replaces it")
        self.begin.replaces = False


def _run(ctx, cfg, task, dataset, model, logger, begin):
    out_dir, device = model_dir(cfg), ctx.device
    memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
    model.to(device, memory_format=memory_format).train()
    optimizer = task.build_optimizer(model, cfg)
    torch.manual_seed(cfg.random_seed + ctx.rank)  # dropout streams differ between processes
    start = 0
    if begin.state_file:
        start = restore(begin.state, model, optimizer, ctx, logger)
        begin.state = None
        logger.info("resumed from %s at iteration %d%s", begin.state_file, start,
                    "; changed: " + ", ".join(begin.changes) if begin.changes else "")
    net = model
    if ctx.distributed:
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                      find_unused_parameters=task.has_unused_parameters(cfg))
    dtype = amp_dtype(cfg.amp, device)
    if cfg.amp != "off" and dtype is None:
        logger.info("amp=%s needs CUDA; training in float32 on %s", cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    skipped = SkippedSteps(scaler, MAX_SKIPPED_STEPS)
    normalisation = task.normalisation(cfg)

    loader = build_train_loader(dataset, cfg, ctx, start, loader_workers(cfg, ctx, logger))
    logger.info("training %s on %d x %s: %d images%s, iterations %d..%d of global batch %d, "
                "weights from %s", cfg.cfg_name, ctx.world_size, device,
                len(loader.dataset.names), task.dataset_note(dataset), start + 1, cfg.max_iter,
                cfg.batch_size, begin.state_file or begin.pretrain or "scratch")
    task.report(logger)
    saves = _Saves(model, optimizer, cfg, ctx, begin, logger, last=start,
                   config_keys=task.config_keys)
    step = start
    metrics = RunMetrics(out_dir, metric_columns(task.term_names, task.validates(cfg)), start,
                         ctx.is_main, logger)
    throughput = Throughput(device, time.monotonic)
    with metrics, stop_requests() as stop, \
            progress_bar(total=cfg.max_iter, initial=start, desc=task.name,
                         shown=ctx.is_main) as progress:
        for iteration, batch in zip(range(start, cfg.max_iter), loader):
            lr = task.learning_rate(cfg, iteration)
            set_lr(optimizer, lr)
            step = iteration + 1
            try:
                terms, stepped = training_step(task, net, optimizer, scaler,
                                               prepare_batch(batch, cfg, device, normalisation),
                                               cfg, ctx, dtype)
                skipped.record(stepped)
            except TrainingStopped as exc:
                raise UserError(f"{exc} at iteration {step}; the last checkpoint in {out_dir} "
                                f"is intact") from None

            throughput.count()
            progress.update(1)
            progress.set_postfix({k: f"{v:.4f}" for k, v in terms.items()}, lr=f"{lr:.2e}")
            row = {}
            if step % cfg.display_step == 0 or step == cfg.max_iter:
                logger.info("iter %d/%d %s%s lr %.3e%s", step, cfg.max_iter,
                            " ".join(f"{k} {v:.4f}" for k, v in terms.items()),
                            task.status(model), lr, skipped.summary())
                row = {"lr": lr, **terms, **throughput.reading(cfg.batch_size)}
            with throughput.paused():
                scores = task.validate(model, cfg, ctx, logger, step)
            if row or scores:
                metrics.write(step, {**row, **scores})
            if step % cfg.step_size == 0 or step == cfg.max_iter:
                with throughput.paused():
                    saves.checkpoint(step)
            signal_point.reach("iteration")
            signum = max_over_processes(stop.signum, ctx) if step < cfg.max_iter else 0
            if signum:
                raise saves.interrupted(step, signum)
    if step < cfg.max_iter:
        raise UserError(f"the training data ran out after iteration {step} of {cfg.max_iter} "
                        f"(max_iter): {len(dataset)} samples, fewer than max_iter x batch_size; "
                        f"the last checkpoint in {out_dir} is intact")
    task.finish(model, cfg, ctx, logger)
    logger.info("finished: iteration %d of %d, checkpoints in %s", step, cfg.max_iter, out_dir)
