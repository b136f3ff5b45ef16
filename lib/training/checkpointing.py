"""Checkpoints of the training loop and resuming from them (recipe 4).

Every ``step_size`` iterations and at the end, rank 0 writes ``model_iter_<N>.pth`` (a plain
state dict, recipe 8) and ``train_state.pth``: model, optimizer, iteration, every
process's RNG states and the configuration; a run stopped by Ctrl-C or SIGTERM writes
``train_state.pth`` alone, where it stopped. Both are written durably (lib.files).
``resume`` continues from a train state only under the configuration it was trained with:
keys that change what training computes (batch, schedule, data, seed, precision ...) must be
the saved ones; keys of AFTER_TRAINING_KEYS (less ``gt_path`` with ``strong_list``,
lib.config.after_training_keys) and RUN_TIME_KEYS may differ, and the differences are logged.
"""
import os

import torch

from lib.config import RUN_TIME_KEYS, SCHEMA, after_training_keys
from lib.errors import UserError
from lib.network.checkpoint import load_file, save_state_dict
from lib.paths import model_dir
from lib.training.distributed import barrier, gather_objects
from lib.training.run_folder import TRAIN_STATE


def resume_path(cfg):
    """The train state to resume from: ``resume`` true -> the run's own, a path -> that."""
    if cfg.resume is False:
        return None
    path = os.path.join(model_dir(cfg), TRAIN_STATE) if cfg.resume is True else cfg.resume
    if not os.path.isfile(path):
        raise UserError(f"config key 'resume': no train state at {path}")
    return path


def changed_keys(saved, cfg, keys=None):
    """(key, saved value, value in ``cfg``) for each of ``keys`` (default: every key of
    SCHEMA; e.g. the keys a training step reads) whose value differs from ``saved`` (a run's
    recorded configuration). A key ``saved`` lacks (one added to SCHEMA since) had its
    default."""
    return [(key, saved.get(key, default), cfg[key]) for key, (_, default) in SCHEMA.items()
            if (keys is None or key in keys) and saved.get(key, default) != cfg[key]]


def training_changes(saved, cfg, keys=None):
    """The changes of :func:`changed_keys` that change what training computes: all but the
    keys of after_training_keys and RUN_TIME_KEYS."""
    free = after_training_keys(cfg) | RUN_TIME_KEYS
    return [change for change in changed_keys(saved, cfg, keys) if change[0] not in free]


def load_train_state(path, cfg, keys=None):
    """The train state at ``path`` and the run-time keys that changed since it was saved
    (``key old -> new`` texts, of ``keys``: the keys the training step reads); a UserError
    naming the first key that changes training."""
    state = load_file(path)
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise UserError(f"config key 'resume': {path} is not a train state (no configuration)")
    if int(state.get("iteration", 0)) > cfg.max_iter:
        raise UserError(f"config key 'max_iter' is {cfg.max_iter}, below iteration "
                        f"{state['iteration']} of the train state {path}: nothing to resume")
    refused = training_changes(state["config"], cfg, keys)
    if refused:
        key, saved, now = refused[0]
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise UserError(f"config key '{key}' is {now!r} but the run in {path} was trained with "
                        f"{saved!r}{more}: put it back to resume, or start a new run under "
                        f"another cfg_name")
    return state, [f"{key} {saved!r} -> {now!r}"
                   for key, saved, now in changed_keys(state["config"], cfg, keys)
                   if key != "resume"]


def _rng_state(ctx):
    state = {"cpu": torch.get_rng_state()}
    if ctx.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(ctx.device)
    return state


def restore(state, model, optimizer, ctx, logger):
    """Load a train state into ``model`` and ``optimizer`` and this process's RNG; return
    the iteration it was saved at."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    rng = state["rng"]
    if len(rng) == ctx.world_size:
        torch.set_rng_state(rng[ctx.rank]["cpu"])
        if "cuda" in rng[ctx.rank] and ctx.device.type == "cuda":
            torch.cuda.set_rng_state(rng[ctx.rank]["cuda"], ctx.device)
    else:
        logger.info("resuming on %d processes instead of %d: dropout streams start afresh",
                    ctx.world_size, len(rng))
    return int(state["iteration"])


def save_checkpoint(model, optimizer, step, cfg, ctx):
    """``model_iter_<step>.pth`` and the resumable ``train_state.pth``, written by rank 0; a
    collective (every process calls it). Returns the checkpoint's path."""
    path = os.path.join(model_dir(cfg), f"model_iter_{step}.pth")
    _save(model, optimizer, step, cfg, ctx, path)
    return path


def save_train_state(model, optimizer, step, cfg, ctx):
    """``train_state.pth`` alone, where an interrupted run stopped between checkpoints (a
    ``model_iter_<step>.pth`` there would offer inference weights at no checkpoint of the
    recipe); a collective like save_checkpoint. Returns its path."""
    _save(model, optimizer, step, cfg, ctx, None)
    return os.path.join(model_dir(cfg), TRAIN_STATE)


def _save(model, optimizer, step, cfg, ctx, weights_path):
    rng = gather_objects(_rng_state(ctx), ctx)
    if ctx.is_main:
        if weights_path:
            save_state_dict(model.state_dict(), weights_path)
        save_state_dict({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "iteration": step, "rng": rng, "config": {k: cfg[k] for k in SCHEMA}},
                        os.path.join(model_dir(cfg), TRAIN_STATE))
    barrier(ctx)
