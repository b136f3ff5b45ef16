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


def png_names(folder):
    """Names of the ``*.png`` files of ``folder`` (hidden temporary files left out), sorted."""
    if not os.path.isdir(folder):
        raise UserError(f"folder not found: {folder}")
    return sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".png") and not f.startswith("."))


def expected_names(list_path=None, tags_file=None, folder=None):
    """The names a job must cover: a list file's, else a tags file's, else a folder's PNGs."""
    if list_path:
        return read_names(list_path)
    if tags_file:
        return sorted(load_tags(tags_file))
    return png_names(folder)


def missing_pngs(folder, names):
    """The ``NAME.png`` files of ``names`` that ``folder`` lacks."""
    return [n + ".png" for n in names if not os.path.isfile(os.path.join(folder, n + ".png"))]


def first_few(files, count=5):
    """``a.png, b.png, ...``: the first ``count`` files, for one-line messages."""
    return ", ".join(files[:count]) + (", ..." if len(files) > count else "")


def evaluation_names(res_path, gt_path, list_path=None, tags_file=None, strict=True):
    """The names to evaluate: a list file's, else a tags file's, else the ground-truth
    folder's (then a prediction without ground truth is an error). ``strict`` requires a
    prediction for each; otherwise those without one are left out."""
    if not (list_path or tags_file):
        orphans = missing_pngs(gt_path, png_names(res_path))
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
