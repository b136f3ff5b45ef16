"""Files: atomic writes, and the names of the files in a folder or a list file.

Every output of this repository is written to a temporary file beside its target and renamed
into place, so a reader (or a rerun after a kill) never sees a half-written file. Temporary
files are hidden (``.tmp-*``), and listings leave hidden files out. Files a rerun trusts
without reading them through (checkpoints, ``train_state.pth``) are also written ``durable``:
on disk before they get their name, so a power cut cannot leave an empty file in their place.
"""
import os
import tempfile

from lib import signal_point
from lib.errors import UserError

TEMPORARY_PREFIX = ".tmp-"  # a file being written (or left by a writer killed meanwhile)


def atomic_write_bytes(path, data, durable=False):
    """Write ``data`` to ``path`` so that a reader never sees a half-written file.

    ``durable``: the data reach the disk before the rename, and the rename itself after it,
    so that after a power cut ``path`` holds the old or the new file, never an empty one.
    Slow (two disk flushes), so for checkpoints, not for thousands of PNGs.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMPORARY_PREFIX, suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make outputs private to their writer
        signal_point.reach("atomic_write")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if durable:
        _sync_folder(folder)


def remove_temporary_files(folder):
    """Delete what writers killed mid-write (SIGKILL, a pool's terminate) left in ``folder``,
    so that a tool that opens every entry of an output folder, as the published evaluator
    does, finds outputs only. Call it while no process writes there."""
    if not os.path.isdir(folder):
        return
    for entry in os.listdir(folder):
        if entry.startswith(TEMPORARY_PREFIX):
            try:
                os.unlink(os.path.join(folder, entry))
            except FileNotFoundError:
                pass


def _sync_folder(folder):
    """Flush a folder's entries (a rename) to disk, where the OS can open a folder (not Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot flush a folder; the data themselves are on disk
    finally:
        os.close(fd)


PNG = ".png"  # the suffix of label maps, seeds and pictures


def file_names(folder, suffix=PNG, what=""):
    """Names of the ``*<suffix>`` files of ``folder``, sorted. Hidden files are left out:
    atomic writers leave ``.tmp-*`` files while (or if killed while) writing. ``what`` names
    the folder in the error if it does not exist."""
    if not os.path.isdir(folder):
        raise UserError(f"{what + ' ' if what else ''}folder not found: {folder}")
    return sorted(f[:-len(suffix)] for f in os.listdir(folder)
                  if f.endswith(suffix) and not f.startswith("."))


def remove_files(folder, suffix=PNG):
    """Delete every ``*<suffix>`` file of ``folder`` (none if there is no folder): a rebuild
    leaves no output of an earlier run behind, whichever names it was for."""
    if os.path.isdir(folder):
        for name in file_names(folder, suffix):
            os.unlink(os.path.join(folder, name + suffix))


def missing_files(folder, names, suffix=PNG):
    """The ``NAME<suffix>`` files of ``names`` that ``folder`` lacks, in the order of ``names``."""
    return [n + suffix for n in names if not os.path.isfile(os.path.join(folder, n + suffix))]


def read_names(list_path):
    """Image names from a list file: the first token of each line without folder and extension
    (``train_aug.txt`` lines ``/JPEGImages/NAME.jpg /SegmentationClassAug/NAME.png`` work too)."""
    try:
        with open(list_path) as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read list file {list_path}: {exc}") from None
    names = [os.path.splitext(os.path.basename(line.split()[0]))[0]
             for line in lines if line.strip()]
    if not names:
        raise UserError(f"list file {list_path} has no names")
    return names


def write_names(list_path, names):
    """Write a list file of image names, one a line (what :func:`read_names` reads), atomically."""
    atomic_write_bytes(list_path, "".join(f"{name}\n" for name in names).encode())


def write_output(path, data):
    """:func:`atomic_write_bytes` for a file the user named: an OS error is one line, and the
    path is printed."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc}") from None
    print(f"wrote {path}")
