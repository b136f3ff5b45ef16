"""A training run's folder (``<save_model_path>/<cfg_name>``): which run it holds, when a new
run may use it, and which network its checkpoints hold.

The folder's ``config.yml`` is the run's record: written just before the run's first
checkpoint (so it never describes weights it did not train), kept by a resumed run. Its
network keys (width, dilation, backbone ...) are how inference rebuilds the network of a
checkpoint of that folder, and its input keys (INPUT_KEYS) how inference feeds that network
the input it was trained on; ``model_iter_<N>.pth`` itself stays the plain, published state
dict (recipe 8). A checkpoint without a record (a published one) is built from the config.

``overwrite=true`` deletes nothing before the new run has passed every check and built its
network; then the old run's files move to ``<folder>/.replaced`` (set_aside), are deleted
when the new run writes its first checkpoint (finish_replacement) and go back if it stops
before (put_back). ``train.log`` stays in place: a replaced run's lines go with its files,
a run put back keeps the lines of the run that failed to replace it. A kill anywhere in
between leaves what recover_set_aside, at the folder's next training, completes or undoes.
"""
import os
import re
import shutil
from dataclasses import dataclass

from lib.config import Config, ConfigError, load_config, save_config
from lib.errors import UserError, first_few, one_line
from lib.network.checkpoint import load_checkpoint
from lib.paths import checkpoint_path, model_dir
from lib.records import read_yaml_mapping, show_value
from lib.training.metrics import metric_files

RUN_CONFIG_NAME = "config.yml"  # the run's configuration: its record (the module docstring)
LOG_NAME = "train.log"
TRAIN_STATE = "train_state.pth"
# The run overwrite=true replaces, until the new run's first checkpoint; files on their way
# between the folder and there (they belong in the folder wherever a kill leaves them); the
# log line that starts a replacing run.
SET_ASIDE = ".replaced"
MOVING = ".replaced.moving"
SET_ASIDE_NOTE = "overwrite=true: set aside the run that was here"
_CHECKPOINT = re.compile(r"model_iter_(\d+)\.pth")
# The keys of what every stage's network sees at inference besides the image itself: its
# normalisation (another mean or std and a trained network labels other images, silently).
# Inference sizes (resize, test_scales) and saliency keys are inference settings, as published.
INPUT_KEYS = ("mean", "std")


def checkpoint_files(folder):
    """The ``model_iter_<N>.pth`` names in ``folder``, by iteration ([] if no folder)."""
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(folder)
             if (m := _CHECKPOINT.fullmatch(name))]
    return [name for _, name in sorted(found)]


def run_files(folder):
    """The files that show ``folder`` holds a run: its checkpoints and train state."""
    state = [TRAIN_STATE] if os.path.isfile(os.path.join(folder, TRAIN_STATE)) else []
    return checkpoint_files(folder) + state


def claim_for_new_run(cfg, outputs=()):
    """Refuse, in one line, a new (not resumed) run into a folder that holds another run,
    unless ``overwrite``; then return the files the new run replaces (set_aside): the old
    run's checkpoints, train state, record, metrics and the task's ``outputs`` (file names)."""
    folder = model_dir(cfg)
    held = run_files(folder)
    if held and not cfg.overwrite:
        raise UserError(f"{folder} holds another run ({first_few(held, 3)}): resume=true "
                        f"continues it, overwrite=true replaces it, or train under another "
                        f"cfg_name")
    names = [*held, RUN_CONFIG_NAME, *metric_files(folder), *outputs] if held else []
    return [os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))]


def set_aside(folder, paths):
    """Move ``paths`` (claim_for_new_run's) into ``<folder>/.replaced``: gathered in a folder
    of their own, which is then renamed, so a kill on the way leaves them where
    recover_set_aside finds them."""
    moving = os.path.join(folder, MOVING)
    os.makedirs(moving)
    for path in paths:
        os.replace(path, os.path.join(moving, os.path.basename(path)))
    os.replace(moving, os.path.join(folder, SET_ASIDE))


def finish_replacement(folder):
    """The new run has written its first checkpoint: delete the run set aside and its lines of
    the log (up to the new run's SET_ASIDE_NOTE). False if no run was set aside."""
    aside = os.path.join(folder, SET_ASIDE)
    if not os.path.isdir(aside):
        return False
    _drop_log_before(os.path.join(folder, LOG_NAME), SET_ASIDE_NOTE)
    shutil.rmtree(aside)
    return True


def _drop_log_before(path, note):
    """Cut ``path`` to its lines from the last one containing ``note`` (in place: a logger
    appending to it goes on at its new end)."""
    if not os.path.isfile(path):
        return
    with open(path, "r+b") as f:
        text = f.read()
        found = text.rfind(note.encode())
        if found <= 0:
            return
        f.seek(0)
        f.write(text[text.rfind(b"\n", 0, found) + 1:])
        f.truncate()


def put_back(folder):
    """The new run stopped before its first checkpoint: delete what it wrote but log lines
    (a record, a checkpoint) and move the run set aside back. False if none was set aside."""
    aside, moving = os.path.join(folder, SET_ASIDE), os.path.join(folder, MOVING)
    if os.path.isdir(aside):
        for name in [*run_files(folder), RUN_CONFIG_NAME, *metric_files(folder)]:
            if os.path.isfile(os.path.join(folder, name)):
                os.unlink(os.path.join(folder, name))
        os.replace(aside, moving)
    if not os.path.isdir(moving):
        return False
    for name in os.listdir(moving):
        os.replace(os.path.join(moving, name), os.path.join(folder, name))
    os.rmdir(moving)
    return True


def recover_set_aside(folder):
    """Complete or undo a replacement a kill cut short (see the module's docstring): a run set
    aside goes for good if its replacement wrote a train state, else it goes back. The line
    for the log saying which, or None if there was nothing to do."""
    if os.path.isdir(os.path.join(folder, SET_ASIDE)) and \
            os.path.isfile(os.path.join(folder, TRAIN_STATE)):
        finish_replacement(folder)
        return (f"overwrite=true: deleted the run set aside in {folder}; the run that replaced "
                f"it had saved its train state before it was stopped")
    if put_back(folder):
        return (f"overwrite=true: put back the run set aside in {folder}; the run that was to "
                f"replace it was stopped before its first checkpoint")
    return None


def run_record_path(cfg):
    """The run's record: the configuration ``model_dir(cfg)`` was trained with."""
    return os.path.join(model_dir(cfg), RUN_CONFIG_NAME)


def write_record_once(cfg, keys=None):
    """Write the run's record, ``keys`` of ``cfg`` (the keys its step reads; default all),
    unless the folder has one (a resumed run keeps its own)."""
    path = run_record_path(cfg)
    if not os.path.isfile(path):
        save_config(cfg, path, keys)


def ending_line(exc):
    """How a run ended, for the last line of its log: "interrupted" (or where and how to
    resume: a lib.errors.Interrupted) or "stopped: why"."""
    if isinstance(exc, KeyboardInterrupt):
        return str(exc) or "interrupted"
    why = one_line(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {one_line(exc)}"
    return f"stopped: {why}"


def find_checkpoint(cfg):
    """The checkpoint the config chooses (``checkpoint``, else ``model_iter_<max_iter>.pth``
    of ``save_model_path``/``cfg_name``); a one-line error naming those keys and the
    checkpoints that do exist."""
    path = checkpoint_path(cfg)
    if os.path.isfile(path):
        return path
    if cfg.checkpoint:
        raise ConfigError(f"config key 'checkpoint': weights file not found: {path}")
    folder = model_dir(cfg)
    present = checkpoint_files(folder)
    if present:
        there = f"{folder} holds {first_few(present)}: set max_iter to one of their numbers"
    elif os.path.isdir(os.path.join(folder, SET_ASIDE)):
        there = (f"{folder} holds no model_iter_*.pth: its run is set aside in "
                 f"{SET_ASIDE}/ by an overwrite=true run that was stopped; the next training "
                 f"under this cfg_name puts it back")
    elif os.path.isdir(folder):
        there = f"{folder} holds no model_iter_*.pth"
    else:
        there = f"no folder {folder} (no run trained under this cfg_name and save_model_path)"
    raise ConfigError(f"weights file not found: {path} (checkpoint unset: model_iter_<max_iter>"
                      f".pth of save_model_path/cfg_name, max_iter={cfg.max_iter}); {there}, "
                      f"or give checkpoint=PATH")


def trained_values(weights, keys):
    """{key: value} of ``keys`` from the record beside ``weights``, or None without one."""
    path = os.path.join(os.path.dirname(weights), RUN_CONFIG_NAME)
    record = read_yaml_mapping(path, "the run's record")
    if record is None:
        return None
    try:
        trained = load_config(None, {k: record[k] for k in keys if k in record})
    except ConfigError as exc:
        raise UserError(f"{path}: {exc}") from None
    return {key: trained[key] for key in keys}


@dataclass
class TrainedNetwork:
    """A network with the checkpoint's weights, the config it was built with (the network
    keys of the checkpoint's run) and the keys taken from that run (``key value`` texts)."""

    model: object
    weights: str
    cfg: Config
    adopted: list


def load_trained_network(cfg, keys, build):
    """Build ``build(cfg)`` with the network ``keys`` and the INPUT_KEYS of the run that
    trained the chosen checkpoint and load it. A key the config sets (file or override) to
    another value than the run's is a one-line error naming both; a key left out takes the
    run's value."""
    weights = find_checkpoint(cfg)
    run_keys = (*keys, *INPUT_KEYS)
    trained = trained_values(weights, run_keys)
    adopted = []
    if trained is not None:
        differ = [key for key in run_keys if trained[key] != cfg[key]]
        asked = [key for key in differ if key in cfg.get("given_keys", ())]
        if asked:
            key, more = asked[0], (f" ({', '.join(asked[1:])} too)" if asked[1:] else "")
            record = os.path.join(os.path.dirname(weights), RUN_CONFIG_NAME)
            raise ConfigError(f"config key '{key}' is {cfg[key]!r} but {weights} was trained "
                              f"with {trained[key]!r}{more} ({record}): leave the key out or "
                              f"set {key}={show_value(trained[key])}")
        adopted = [f"{key} {trained[key]!r}" for key in differ]
        cfg = Config({**cfg, **trained})
    model = build(cfg)
    built = ", ".join(f"{key}={cfg[key]}" for key in keys)
    load_checkpoint(model, weights, hint=f"the config builds {built}: a checkpoint trained "
                                         f"with another value of one of them does not fit")
    return TrainedNetwork(model, weights, cfg, adopted)
