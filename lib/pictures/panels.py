"""Pictures of images, saliency, class maps and seeds: colourising, overlays and grids.

Label values follow the seed convention of this repository: 0 background, 1..C the dataset's
classes, C + 1 "unlabeled" (a seed pixel that carries no label) and 255 "ignore" (ground
truth); names and colours are the dataset's (lib.dataset.description: VOC's by default, COCO's
81 colours far apart).
"""
import io
import math
from dataclasses import dataclass

import cv2
import numpy as np

from lib.dataset.description import UNLABELED_NAME, VOC12
from lib.files import atomic_write_bytes
from lib.voc import IGNORE

UNLABELED_COLOUR = (255, 255, 255)  # white: "unlabeled" in every picture


def figure_png(fig, dpi=100):
    """PNG bytes of a matplotlib Figure (drawn by the Agg renderer; no pyplot, no backend
    switch for whoever imports this module)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _check_labels(mask):
    mask = np.asarray(mask)
    if not np.issubdtype(mask.dtype, np.integer) and mask.dtype != bool:
        raise TypeError(f"a label mask must hold integers, got {mask.dtype}")
    if mask.ndim != 2:
        raise ValueError(f"a label mask must be H x W, got shape {mask.shape}")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError("label values must lie in 0..255")
    return mask.astype(np.intp)


def colorize_labels(mask, unlabeled_color=UNLABELED_COLOUR, dataset=VOC12):
    """Return the H x W x 3 uint8 RGB picture of a label mask in the palette of ``dataset``.

    Seed value C + 1 means "unlabeled", so it is drawn in ``unlabeled_color`` (white by
    default); pass ``None`` to keep the palette's own colour for it.
    """
    labels = _check_labels(mask)
    rgb = dataset.palette[labels]
    if unlabeled_color is not None:
        rgb[labels == dataset.unlabeled] = np.asarray(unlabeled_color, dtype=np.uint8)
    return rgb


def _check_rgb(image_rgb):
    image = np.asarray(image_rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {image.dtype} {image.shape}")
    return image


def overlay(image_rgb, mask, alpha=0.5, dataset=VOC12):
    """Blend label colours (the palette of ``dataset``) over an RGB image.

    Background (0) blends with the palette's black, so it shows as a darkened image; values
    with no class (C + 1 unlabeled, 255 ignore and anything else above C) leave the image as
    is.
    """
    image = _check_rgb(image_rgb)
    labels = _check_labels(mask)
    if labels.shape != image.shape[:2]:
        raise ValueError(f"mask {labels.shape} and image {image.shape[:2]} differ in size")
    colours = dataset.palette[labels].astype(np.float32)
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colours
    has_class = (labels <= dataset.num_fg_classes)[..., None]
    return np.where(has_class, np.round(blended), image).astype(np.uint8)


def heatmap(cam_2d, image_rgb=None, alpha=0.5, vmin=None, vmax=None):
    """Colour a 2-D map with matplotlib's ``jet``, optionally blended over an RGB image.

    The map is scaled to 0..1 between ``vmin`` and ``vmax`` (its own minimum and maximum by
    default; a constant map becomes 0). With an image the map is resized bilinearly to it.
    """
    import matplotlib

    values = np.asarray(cam_2d, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"expected an H x W map, got shape {values.shape}")
    low = float(values.min()) if vmin is None else float(vmin)
    high = float(values.max()) if vmax is None else float(vmax)
    unit = np.clip((values - low) / (high - low), 0, 1) if high > low else np.zeros_like(values)
    if image_rgb is None:
        return (matplotlib.colormaps["jet"](unit)[..., :3] * 255).round().astype(np.uint8)
    image = _check_rgb(image_rgb)
    unit = cv2.resize(unit, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colours = matplotlib.colormaps["jet"](unit)[..., :3] * 255
    return ((1 - alpha) * image + alpha * colours).round().astype(np.uint8)


@dataclass(frozen=True)
class Panel:
    """One picture in a grid: ``kind`` says how ``data`` is drawn.

    "rgb": an H x W x 3 uint8 image; "gray": a 2-D map in grey (uint8 on 0..255, a map
    inside 0..1 on 0..1, anything else on its own range); "labels": an integer label mask
    drawn with :func:`colorize_labels` in the grid's dataset colours.
    """

    kind: str
    data: np.ndarray

    def __post_init__(self):
        if self.kind not in ("rgb", "gray", "labels"):
            raise ValueError(f"panel kind must be 'rgb', 'gray' or 'labels', got {self.kind!r}")


def _gray_range(data):
    if data.dtype == np.uint8:
        return 0, 255
    if data.size and data.min() >= 0 and data.max() <= 1:
        return 0, 1
    return None, None


def _draw_panel(ax, panel, dataset):
    data = np.asarray(panel.data)
    if panel.kind == "rgb":
        ax.imshow(_check_rgb(data))
    elif panel.kind == "gray":
        low, high = _gray_range(data)
        ax.imshow(data, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    else:
        ax.imshow(colorize_labels(data, dataset=dataset), interpolation="nearest")


def label_name(value, dataset=VOC12):
    """The name of label ``value`` in pictures: the dataset's class, "unlabeled" (C + 1),
    "ignore" (255), else the number."""
    if value == dataset.unlabeled:
        return UNLABELED_NAME
    if value == IGNORE:
        return "ignore"
    return dataset.class_names[value] if value < dataset.num_classes else str(value)


def _legend_entries(rows, dataset):
    """(value, name, colour) for every label value found in any "labels" panel, in order."""
    present = set()
    for row in rows:
        for panel in row:
            if panel.kind == "labels":
                present.update(np.unique(_check_labels(panel.data)).tolist())
    return [(value, label_name(value, dataset),
             tuple(colorize_labels(np.array([[value]]), dataset=dataset)[0, 0]))
            for value in sorted(present)]


def save_seed_grid(rows, path, column_titles=(), dataset=VOC12, panel_inches=2.0, dpi=100,
                   legend_columns=6):
    """Draw rows of panels as one PNG figure, with column titles and a class legend below.

    ``rows`` is a list of rows, each a list of :class:`Panel`; labels take the names and
    colours of ``dataset``. The legend lists only the label
    values that occur in some "labels" panel (plus "unlabeled" / "ignore" when present). The
    figure is ``ncols * panel_inches`` wide; its height is the rows plus a title strip and the
    legend. The PNG is written atomically. Returns the legend entries as (value, name) pairs.
    """
    if not rows or not any(rows):
        raise ValueError("save_seed_grid needs at least one panel")
    num_rows, num_cols = len(rows), max(len(row) for row in rows)
    entries = _legend_entries(rows, dataset)
    title_inches = 0.35 if column_titles else 0.1
    legend_rows = math.ceil(len(entries) / legend_columns)
    legend_inches = 0.1 + 0.28 * legend_rows
    width = num_cols * panel_inches
    height = num_rows * panel_inches + title_inches + legend_inches

    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fig = Figure(figsize=(width, height))
    axes = fig.subplots(num_rows, num_cols, squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, wspace=0.04, hspace=0.04,
                        top=1 - title_inches / height, bottom=legend_inches / height)
    for r in range(num_rows):
        for c in range(num_cols):
            ax = axes[r][c]
            if c >= len(rows[r]):
                ax.set_axis_off()
                continue
            _draw_panel(ax, rows[r][c], dataset)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():  # a thin frame keeps white "unlabeled" visible
                spine.set_edgecolor("0.6")
                spine.set_linewidth(0.5)
    for c, title in enumerate(column_titles):
        cell = axes[0][c].get_position(original=True)
        fig.text(cell.x0 + cell.width / 2, 1 - 0.5 * title_inches / height, title,
                 ha="center", va="center", fontsize=10)
    if entries:
        handles = [Patch(facecolor=np.asarray(colour) / 255, edgecolor="0.4", label=name)
                   for _, name, colour in entries]
        fig.legend(handles=handles, loc="lower center", ncol=min(legend_columns, len(entries)),
                   fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0.0), handlelength=1.2,
                   columnspacing=1.0, borderaxespad=0.2)

    atomic_write_bytes(path, figure_png(fig, dpi))
    return [(value, name) for value, name, _ in entries]
