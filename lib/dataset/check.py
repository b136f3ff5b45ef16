"""Check a dataset's files once, before hours of training or inference depend on them.

Missing files are reported together (how many, and the first few paths); a file that is
there but unusable (unreadable, truncated, of another size than its image) is named with
what is wrong. Only headers and the JPEG end marker are read, so the check is fast.
"""
import os
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from lib.errors import UserError, first_few

SHOWN = 3
_JPEG_END = b"\xff\xd9"
MODE_NAMES = {"P": "palette", "RGB": "colour", "RGBA": "colour with alpha", "LA": "grey with alpha",
              "I;16": "16-bit grey", "I": "32-bit", "1": "1-bit"}


def _header_size(path):
    """(H, W, PIL mode) from the file header, or a string saying what is wrong."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            mode = image.mode
    except Exception as exc:  # any decoder complaint means the file is unusable
        return f"unreadable ({' '.join(str(exc).split()) or type(exc).__name__})"
    if path.lower().endswith((".jpg", ".jpeg")):
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 64))
            if _JPEG_END not in f.read():
                return "truncated (no JPEG end marker)"
    return height, width, mode


def _missing_line(kind, paths):
    return f"{len(paths)} {kind} missing: {first_few(paths, SHOWN)}"


def check_files(names, image_path, map_paths, workers=8, grey=True):
    """Raise one UserError listing every problem of the images and their maps.

    ``image_path(name)`` gives the image; ``map_paths`` maps a kind ("saliency map",
    "seed map") to a function giving that map's path, which must exist and have the
    image's size. With ``grey`` the maps must be 8-bit grey PNGs (mode L): they are read with
    OpenCV in grey mode, as published, which would turn a palette or colour PNG into
    luminance values instead of its labels.
    """
    kinds = {"image": image_path, **map_paths}
    problems = []
    for kind, path_of in kinds.items():
        missing = [path_of(n) for n in names if not os.path.isfile(path_of(n))]
        if missing:
            problems.append(_missing_line(kind + ("s" if len(missing) > 1 else ""), missing))
    if not problems:
        with ThreadPoolExecutor(workers) as pool:
            sizes = {kind: list(pool.map(_header_size, map(path_of, names)))
                     for kind, path_of in kinds.items()}
        for i, name in enumerate(names):
            image_size = sizes["image"][i]
            if isinstance(image_size, str):
                problems.append(f"{image_path(name)}: {image_size}")
                continue
            for kind, path_of in map_paths.items():
                size = sizes[kind][i]
                if isinstance(size, str):
                    problems.append(f"{path_of(name)}: {size}")
                elif size[:2] != image_size[:2]:
                    problems.append(f"{path_of(name)}: {kind} is {size[0]}x{size[1]} but its "
                                    f"image is {image_size[0]}x{image_size[1]}")
                elif grey and size[2] != "L":
                    problems.append(f"{path_of(name)}: {kind} must be an 8-bit grey PNG, got "
                                    f"mode {size[2]} ({MODE_NAMES.get(size[2], 'not grey')})")
    if problems:
        more = f" (and {len(problems) - SHOWN} more problems)" if len(problems) > SHOWN else ""
        raise UserError("dataset check failed: " + "; ".join(problems[:SHOWN]) + more)
