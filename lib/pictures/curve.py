"""The threshold curve of lib.evaluation.sweep as a picture: precision against recall, and
precision, recall and mIoU against cam_thresh, with the configured and the best threshold
marked and no two point labels on top of each other."""
import numpy as np

from lib.pictures.panels import figure_png

BEST_COLOUR = "tab:red"
CONFIGURED_COLOUR = "tab:purple"


def best_index(points):
    """The index of the point with the best mIoU (NaN counts as worst)."""
    return int(np.argmax([np.nan_to_num(p["mIoU"], nan=-1.0) for p in points]))


def configured_index(points, configured):
    """The index of the point at threshold ``configured``, or None if it was not swept."""
    if configured is None:
        return None
    matches = [i for i, p in enumerate(points) if abs(p["cam_thresh"] - configured) < 1e-9]
    return matches[0] if matches else None


def curve_figure(points, configured=None, title="seeds against cam_thresh"):
    """The matplotlib Figure of the curve; ``configured`` is the config's cam_thresh."""
    thresholds = np.array([p["cam_thresh"] for p in points])
    mp, mr, miou = (100 * np.array([p[k] for p in points]) for k in ("mp", "mr", "mIoU"))
    best, chosen = best_index(points), configured_index(points, configured)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.4))
    pr_ax, sweep_ax = fig.subplots(1, 2)
    pr_ax.plot(mr, mp, "o-", color="tab:blue", markersize=4, zorder=2)
    pr_ax.plot(mr[best], mp[best], "*", color=BEST_COLOUR, markersize=14, zorder=3,
               label=f"best mIoU ({thresholds[best]:g})")
    if chosen is not None:
        pr_ax.plot(mr[chosen], mp[chosen], "D", color=CONFIGURED_COLOUR, markersize=8,
                   zorder=3, fillstyle="none", markeredgewidth=2,
                   label=f"configured cam_thresh ({configured:g})")
    pr_ax.set_xlabel("mean recall (%)")
    pr_ax.set_ylabel("mean precision (%)")
    pr_ax.set_title("precision-recall (labels: cam_thresh)")
    pr_ax.grid(alpha=0.3)
    pr_ax.legend(fontsize=8, loc="lower left")
    for values, label in ((mp, "precision"), (mr, "recall"), (miou, "mIoU")):
        sweep_ax.plot(thresholds, values, "o-", markersize=3, label=label)
    sweep_ax.axvline(thresholds[best], color=BEST_COLOUR, linestyle=":", label="best mIoU")
    if configured is not None:
        sweep_ax.axvline(configured, color=CONFIGURED_COLOUR, linestyle="--",
                         label="configured" + ("" if chosen is not None else " (not swept)"))
    sweep_ax.set_xlabel("cam_thresh")
    sweep_ax.set_ylabel("%")
    sweep_ax.set_title(title)
    sweep_ax.grid(alpha=0.3)
    sweep_ax.legend(fontsize=8)
    fig.tight_layout()
    order = [i for i in (chosen, best) if i is not None]
    order += [i for i in range(len(points)) if i not in order]
    label_points(fig, pr_ax, list(zip(mr, mp)), [f"{t:g}" for t in thresholds], order)
    return fig


def label_points(fig, ax, xy, texts, order):
    """Annotate the points in ``order`` of priority, leaving out a label that would overlap
    one already placed. Returns the indices labelled."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    placed, boxes = [], []
    for i in order:
        label = ax.annotate(texts[i], xy[i], textcoords="offset points", xytext=(5, 4),
                            fontsize=7)
        box = label.get_window_extent(renderer)
        if any(box.overlaps(other) for other in boxes):
            label.remove()
            continue
        placed.append(i)
        boxes.append(box)
    return placed


def curve_plot_png(points, configured=None):
    """PNG bytes of :func:`curve_figure`."""
    return figure_png(curve_figure(points, configured))
