"""Image-level tag files: the published pickle format, and plain JSON or text forms.

A tags file maps an image name to the array of its classes in 1..C, C the foreground classes
of the dataset (VOC 20, COCO 80: lib.dataset.description). The published
``im_tags.pkl`` is a Python-2 protocol-0 pickle of NumPy int64 arrays whose globals
reference ``numpy.core.multiarray``; it is read with a restricted unpickler that can
build NumPy arrays and nothing else, so a pickle from the internet cannot run code.
"""
import io
import json
import os
import pickle

import numpy as np

from lib.dataset.description import VOC12
from lib.errors import UserError
from lib.files import atomic_write_bytes

# (module, name) pairs the published file (and files written by NumPy 1.x or 2.x) need.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class TagsError(UserError):
    """A tags file is unreadable or holds something other than classes in 1..C."""


class UnsafePickleError(TagsError):
    """A pickle asked for something other than NumPy arrays and builtins."""


class _TagsUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"refusing to load '{module}.{name}': a tags pickle may only hold NumPy arrays")
        if module == "numpy.core.multiarray":  # NumPy 2 moved it; keep NumPy 1 files loading
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def _normalise(raw, path, dataset):
    if not isinstance(raw, dict):
        raise TagsError(f"{path}: expected a dict of name -> classes, got {type(raw).__name__}")
    tags = {}
    last = dataset.num_fg_classes
    for name, classes in raw.items():
        arr = np.asarray(classes, dtype=np.int64).reshape(-1)
        if arr.size == 0 or arr.min() < 1 or arr.max() > last:
            raise TagsError(f"{path}: tags of '{name}' must be classes in 1..{last} "
                            f"(dataset {dataset.name}), got {arr.tolist()}")
        tags[str(name)] = arr
    return tags


def _read_text(f):
    """Lines ``NAME c1 c2 ...``: the name, then its classes."""
    tags = {}
    for line in f:
        fields = line.split()
        if fields:
            tags[fields[0]] = [int(c) for c in fields[1:]]
    return tags


def load_tags(path, dataset=VOC12):
    """Return ``{name: int64 array of classes in 1..C}`` from a ``.pkl`` (the published
    format), ``.json`` ({name: [classes]}) or ``.txt`` (lines ``NAME c1 c2 ...``) file; C is
    the foreground classes of ``dataset`` (a lib.dataset.description.DatasetDescription)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TagsError(f"tags file not found: {path}")
    try:
        if path.endswith(".json"):
            with open(path) as f:
                raw = json.load(f)
        elif path.endswith(".txt"):
            with open(path) as f:
                raw = _read_text(f)
        else:
            with open(path, "rb") as f:
                raw = _TagsUnpickler(f, encoding="latin1").load()
    except TagsError:
        raise
    except Exception as exc:  # a damaged file: any parser error
        raise TagsError(f"cannot read tags file {path}: {' '.join(str(exc).split())}") from None
    return _normalise(raw, path, dataset)


def save_tags(tags, path):
    """Write tags as the published pickle (``.pkl``), JSON (``.json``) or text (``.txt``),
    atomically.

    The pickle uses protocol 2 and names ``numpy.core.multiarray`` as the published file
    does, so NumPy 1.x code (the published implementation) loads it too.
    """
    path = os.fspath(path)
    clean = {name: np.asarray(c, dtype=np.int64).reshape(-1) for name, c in sorted(tags.items())}
    if path.endswith(".json"):
        data = json.dumps({k: v.tolist() for k, v in clean.items()}, indent=0).encode()
    elif path.endswith(".txt"):
        data = "".join(f"{k} {' '.join(map(str, v.tolist()))}\n" for k, v in clean.items()).encode()
    else:
        buf = io.BytesIO()
        pickle.dump(clean, buf, protocol=2)
        # GLOBAL opcodes are newline-terminated text, so renaming the module is safe.
        data = buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    atomic_write_bytes(path, data)
