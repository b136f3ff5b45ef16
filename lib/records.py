"""What made an output folder, and which outputs are left to make.

A record is written before the first output and checked on a rerun.

Outputs are skipped on a rerun when they exist, so a folder must never mix the outputs of two
settings (another ``cam_thresh``, a retrained model at the same path, another checkpoint). The
record (``record.yml`` in the folder) holds the identity of the weights (their SHA-256) and
every setting that changes the outputs. A rerun continues only when its record is equal; else
it stops with one line naming what differs, and ``overwrite=true`` rebuilds the folder. A folder
that holds outputs but no record was made by something else (the published seeds, an older
version) and is not mixed into either.
"""
import hashlib
import os

import yaml

from lib.errors import UserError, one_line
from lib.files import atomic_write_bytes, file_names
from lib.training.distributed import barrier, shard

RECORD_NAME = "record.yml"
_HASH_BLOCK = 1 << 22


def weights_identity(path):
    """``sha256:<hex>`` of a weights file: equal for the same weights, wherever they lie."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_HASH_BLOCK), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def record_path(folder):
    return os.path.join(folder, RECORD_NAME)


def read_yaml_mapping(path, what, hint=""):
    """The mapping the YAML file ``path`` holds (``what`` it should be), or None if there is no
    such file; a one-line UserError (ending with ``hint``) if it is unreadable or no mapping."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            mapping = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read {what} {path}: {one_line(exc)}{hint}") from None
    if not isinstance(mapping, dict):
        raise UserError(f"{path} is not {what} (a mapping of keys to values){hint}")
    return mapping


def read_record(folder):
    """The record of ``folder`` (a dict), or None if it has none; UserError if unreadable."""
    return read_yaml_mapping(record_path(folder), "a record of settings",
                             "; overwrite=true rebuilds the folder")


def _show(value):
    """A value as YAML on one line (``0.25``, ``[1, 2]``, ``null``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1000)
    return text.strip().removesuffix("...").strip()


def record_differences(saved, wanted):
    """``key: saved -> wanted`` for every key whose value differs (absent keys show as null)."""
    keys = list(wanted) + [k for k in saved if k not in wanted]
    return [f"{k} {_show(saved.get(k))} -> {_show(wanted.get(k))}" for k in keys
            if saved.get(k) != wanted.get(k)]


def check_record(folder, wanted, has_outputs, overwrite, retry_hint):
    """Raise a one-line UserError unless outputs made with ``wanted`` may go into ``folder``.

    ``has_outputs``: the folder already holds outputs of this kind. With ``overwrite`` any
    folder is accepted (the caller rebuilds it). ``retry_hint`` says how to choose another
    folder (e.g. "or another test_cfg").
    """
    if overwrite or not os.path.isdir(folder):
        return
    saved = read_record(folder)
    if saved is None:
        if has_outputs:
            raise UserError(f"{folder} holds outputs but no {RECORD_NAME} saying what made them; "
                            f"overwrite=true rebuilds it, {retry_hint}")
        return
    differences = record_differences(saved, wanted)
    if differences:
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        raise UserError(f"{folder} was made with other settings: {differences[0]}{more}; "
                        f"overwrite=true rebuilds it, {retry_hint}")


def write_record(folder, record):
    """Write the record durably, before the first output, so a killed run can continue."""
    data = yaml.safe_dump(record, sort_keys=False).encode()
    atomic_write_bytes(record_path(folder), data, durable=True)


def names_to_write(names, ctx, done, overwrite):
    """This process's images: its share of the full sorted list (so every image has exactly one
    owner, whatever the other processes have written meanwhile), less those ``done``."""
    mine = shard(sorted(names), ctx)
    return mine if overwrite else [n for n in mine if not done(n)]


def prepare_output_folder(ctx, folder, record, overwrite, retry_hint, remove_outputs):
    """Check the folder's record on every process (one error everywhere), then on the main
    process call ``remove_outputs()`` if ``overwrite`` (a rebuild) and write the record; a
    folder that continues keeps its record untouched."""
    has_outputs = os.path.isdir(folder) and bool(file_names(folder))
    check_record(folder, record, has_outputs, overwrite, retry_hint)
    barrier(ctx)
    if ctx.is_main and (overwrite or read_record(folder) != record):
        if overwrite:
            remove_outputs()
        os.makedirs(folder, exist_ok=True)
        write_record(folder, record)
    barrier(ctx)


def outputs_summary(written, skipped, failed, seconds, folders, error=None):
    """The last line of an inference run: images written, skipped (already there) and failed
    (not written because the run stopped on ``error``), where, and how long it took."""
    ending = "done" if error is None else (
        "interrupted" if isinstance(error, KeyboardInterrupt) else "stopped by an error")
    return (f"{ending} in {seconds:.1f} s: {written} images written, {skipped} skipped (already "
            f"there), {failed} failed, in {', '.join(folders)}"
            + ("" if error is None else "; a rerun makes the rest"))
