"""Loading and saving weights: ``vgg_init.pth`` backbones and SGAN checkpoints (recipe 8).

Everything is read with ``torch.load(weights_only=True)``, so a file cannot run code.
"""
import io
import os

import torch

from lib.errors import UserError, first_few
from lib.files import atomic_write_bytes


class CheckpointError(UserError):
    """A weights file is missing, unreadable or does not fit the model."""


def load_file(path):
    """``torch.load(weights_only=True)`` to the CPU, with one-line errors."""
    if not os.path.isfile(path):
        raise CheckpointError(f"weights file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot load weights {path}: {str(exc).splitlines()[0]}") from None


def read_state_dict(path):
    """Load a state dict (also one wrapped as {"state_dict": ...} or {"model": ...})."""
    state = load_file(path)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state dict")
    return state


def fit_state_dict(module, state, path, strict_unexpected, hint=None):
    """Load ``state`` into ``module``; report missing, unexpected and mis-shaped keys in one
    line (the first few of each, and ``hint``: what likely makes the file not fit)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = []
    for k in own:
        if k in state:
            value = state[k]
            if value.shape != own[k].shape and value.numel() == own[k].numel() == 1:
                state[k] = value.reshape(own[k].shape)  # scalar vs [1] gamma
            elif value.shape != own[k].shape:
                shapes.append(f"{k} {tuple(value.shape)} vs model {tuple(own[k].shape)}")
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {first_few(missing, 3)}")
    if unexpected and strict_unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {first_few(unexpected, 3)}")
    if shapes:
        problems.append(f"{len(shapes)} shape differences: {first_few(shapes, 2)}")
    if problems:
        raise CheckpointError(f"{path} does not fit the model: " + " | ".join(problems)
                              + (f" | {hint}" if hint else ""))
    module.load_state_dict({k: state[k] for k in own})


def load_backbone(model, path):
    """Load ``vgg_init.pth`` (``conv1_1.weight`` ...) into ``model.backbone``; extra keys
    ignored."""
    state = read_state_dict(path)
    state = {k[len("backbone."):] if k.startswith("backbone.") else k: v for k, v in state.items()}
    fit_state_dict(model.backbone, state, path, strict_unexpected=False)


def load_checkpoint(model, path, hint=None):
    """Load a trained model's checkpoint (SGAN, classifier, DeepLab), also with a ``module.``
    prefix or, for a model with a ``backbone``, un-prefixed backbone keys (published SGAN).
    ``hint`` ends the error line of a file that does not fit."""
    state = read_state_dict(path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        backbone_keys = set(backbone.state_dict())
        state = {("backbone." + k if k in backbone_keys else k): v for k, v in state.items()}
    fit_state_dict(model, state, path, strict_unexpected=True, hint=hint)


def save_state_dict(state, path):
    """``torch.save`` to a temporary file, flushed to disk, then rename: a killed run or a
    power cut keeps the last good file."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue(), durable=True)
