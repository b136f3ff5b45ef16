"""Image names: from id-list files, tags files or folders of PNGs."""
import os

from lib.dataset.tags import load_tags
from lib.errors import UserError


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


def file_names(folder, suffix=".png", what=""):
    """Names of the ``*<suffix>`` files of ``folder``, sorted. Hidden files are left out:
    atomic writers leave ``.tmp-*`` files while (or if killed while) writing. ``what`` names
    the folder in the error if it does not exist."""
    if not os.path.isdir(folder):
        raise UserError(f"{what + ' ' if what else ''}folder not found: {folder}")
    return sorted(f[:-len(suffix)] for f in os.listdir(folder)
                  if f.endswith(suffix) and not f.startswith("."))


def expected_names(list_path=None, tags_file=None, folder=None):
    """The names a job must cover: a list file's, else a tags file's, else a folder's PNGs."""
    if list_path:
        return read_names(list_path)
    if tags_file:
        return sorted(load_tags(tags_file))
    return file_names(folder)


def missing_pngs(folder, names):
    """The ``NAME.png`` files of ``names`` that ``folder`` lacks."""
    return [n + ".png" for n in names if not os.path.isfile(os.path.join(folder, n + ".png"))]


def first_few(items, count=5):
    """``a, b, c, d, e, ...``: the first ``count`` items, for one-line messages."""
    return ", ".join(items[:count]) + (", ..." if len(items) > count else "")


def evaluation_names(res_path, gt_path, list_path=None, tags_file=None, strict=True):
    """The names to evaluate: a list file's, else a tags file's, else the ground-truth
    folder's (then a prediction without ground truth is an error). ``strict`` requires a
    prediction for each; otherwise those without one are left out."""
    if not (list_path or tags_file):
        orphans = missing_pngs(gt_path, file_names(res_path, what="prediction"))
        if orphans:
            raise UserError(f"{len(orphans)} predictions have no ground truth in {gt_path}: "
                            f"{first_few(orphans)}")
    names = expected_names(list_path, tags_file, gt_path)
    absent = missing_pngs(res_path, names)
    if absent and strict:
        raise UserError(f"{len(absent)} of {len(names)} predictions missing in {res_path}: "
                        f"{first_few(absent)} (--no-strict evaluates those there are)")
    absent = set(absent)
    return [n for n in names if n + ".png" not in absent]
