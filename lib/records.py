"""What made an output folder, and which outputs are left to make.

A record is written before the first output and checked on a rerun.

Outputs are skipped on a rerun when they exist, so a folder must never mix the outputs of two
settings (another ``cam_thresh``, a retrained model at the same path, another checkpoint). The
record (``<folder>.record.yml``, beside the folder as its log ``<folder>.log``: the folder holds
its outputs and nothing else, as the published evaluator and list readers expect) holds the
identity of the weights (their SHA-256) and every setting that changes the outputs. A rerun
continues only when its record is equal; else it stops with one line naming what differs, and
``overwrite=true`` rebuilds the folder. A folder that holds outputs but no record was made by
something else (the published seeds, an older version) and is not mixed into either. A record
that an earlier version wrote inside its folder is read there, and moved beside the folder by
the next run.
"""
import hashlib
import os

import yaml

from lib.errors import UserError, one_line
from lib.files import atomic_write_bytes, file_names, remove_temporary_files
from lib.paths import beside
from lib.training.distributed import barrier, shard

RECORD_SUFFIX = ".record.yml"  # <folder>.record.yml
OLD_RECORD_NAME = "record.yml"  # inside the folder, where earlier versions wrote it
_HASH_BLOCK = 1 << 22


def weights_identity(path):
    """``sha256:<hex>`` of a weights file: equal for the same weights, wherever they lie."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_HASH_BLOCK), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def record_path(folder):
    """The record of ``folder``: ``<folder>.record.yml``, beside it."""
    return beside(folder, RECORD_SUFFIX)


def _old_record_path(folder):
    return os.path.join(folder, OLD_RECORD_NAME)


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
    """The record of ``folder`` (a dict): beside it, else inside it (an earlier version's);
    None if it has none; UserError if unreadable."""
    for path in (record_path(folder), _old_record_path(folder)):
        record = read_yaml_mapping(path, "a record of settings",
                                   "; overwrite=true rebuilds the folder")
        if record is not None:
            return record
    return None


def move_old_record(folder):
    """Move the record an earlier version wrote inside ``folder`` beside it (unless a record
    lies there already); return the line saying so, or None if there was none to move."""
    old, new = _old_record_path(folder), record_path(folder)
    if not os.path.isfile(old) or os.path.exists(new):
        return None
    os.replace(old, new)
    return f"moved the record of {folder} from {old} to {new} (outside the folder of outputs)"


def show_value(value):
    """A value as YAML on one line (``0.25``, ``[1, 2]``, ``null``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1000)
    return text.strip().removesuffix("...").strip()


def record_differences(saved, wanted):
    """``key: saved -> wanted`` for every key whose value differs (absent keys show as null)."""
    keys = list(wanted) + [k for k in saved if k not in wanted]
    return [f"{k} {show_value(saved.get(k))} -> {show_value(wanted.get(k))}" for k in keys
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
            raise UserError(f"{folder} holds outputs but no record ({record_path(folder)}) "
                            f"saying what made them; overwrite=true rebuilds it, {retry_hint}")
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


def prepare_output_folder(ctx, folder, record, overwrite, retry_hint, remove_outputs,
                          folders=None):
    """Check the folder's record on every process (one error everywhere), then on the main
    process move an earlier version's record beside the folder, call ``remove_outputs()`` if
    ``overwrite`` (a rebuild) and write the record; a folder that continues keeps its record
    untouched. The files a killed run left half-written in ``folders`` (every folder the run
    writes; default ``folder`` alone) go. Returns the line saying a record was moved (for the
    log), or None."""
    has_outputs = os.path.isdir(folder) and bool(file_names(folder))
    check_record(folder, record, has_outputs, overwrite, retry_hint)
    barrier(ctx)
    moved = None
    if ctx.is_main:
        moved = move_old_record(folder)
        for written in folders or [folder]:
            remove_temporary_files(written)
        if overwrite or read_record(folder) != record:
            if overwrite:
                remove_outputs()
            os.makedirs(folder, exist_ok=True)
            write_record(folder, record)
    barrier(ctx)
    return moved


def outputs_summary(written, skipped, failed, seconds, folders, error=None):
    """The last line of an inference run: images written, skipped (already there) and failed
    (not written because the run stopped on ``error``), where, and how long it took."""
    ending = "done" if error is None else (
        "interrupted" if isinstance(error, KeyboardInterrupt) else "stopped by an error")
    return (f"{ending} in {seconds:.1f} s: {written} images written, {skipped} skipped (already "
            f"there), {failed} failed, in {', '.join(folders)}"
            + ("" if error is None else "; a rerun makes the rest"))
