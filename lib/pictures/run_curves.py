"""Training curves of one or more runs from their metrics.csv (lib.training.metrics): one panel
per loss term, the learning rate and, where a run validated, its val mIoU, all against the
iteration, the runs overlaid and named by their folders."""
import math
import os

from lib.errors import UserError
from lib.files import atomic_write_bytes
from lib.pictures.panels import figure_png
from lib.training.metrics import METRICS_NAME, VAL_COLUMN, read_metrics

NOT_PLOTTED = ("iteration", "samples_per_s", "peak_gpu_mem_mib")
PANELS_PER_ROW = 3


def run_names(run_dirs):
    """A name per run folder: the fewest last path components that tell them apart (the folder
    names, or ``a/seg`` and ``b/seg`` for runs of one cfg_name in two save_model_paths)."""
    parts = [os.path.abspath(folder).split(os.sep) for folder in run_dirs]
    for count in range(1, max(map(len, parts)) + 1):
        names = ["/".join(p[-count:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return names  # the same folder given twice


def read_run(run_dir, name=None):
    """(name, rows) of a run folder: ``name`` (default its folder name) and the rows of its
    metrics.csv; a one-line UserError if it has none."""
    path = os.path.join(run_dir, METRICS_NAME)
    if not os.path.isfile(path):
        raise UserError(f"no {METRICS_NAME} in {run_dir}: is it a training run's folder "
                        f"(<save_model_path>/<cfg_name>)?")
    rows = read_metrics(path)
    if not rows:
        raise UserError(f"{path} has no rows yet (the first is written at display_step)")
    return name or os.path.basename(os.path.normpath(run_dir)), rows


def panel_columns(runs):
    """The columns to draw, in order of first appearance: the loss terms, then lr and
    val_mIoU."""
    columns = []
    for _, rows in runs:
        for row in rows:
            columns += [key for key in row if key not in NOT_PLOTTED and key not in columns]
    tail = [key for key in ("lr", VAL_COLUMN) if key in columns]
    return [key for key in columns if key not in tail] + tail


def _panel(ax, column, runs):
    for name, rows in runs:
        points = [(row["iteration"], row[column]) for row in rows if column in row]
        if points:
            xs, ys = zip(*points)
            ys = [100 * y for y in ys] if column == VAL_COLUMN else ys
            ax.plot(xs, ys, "o-" if len(points) < 30 else "-", markersize=3, label=name)
    titles = {"lr": ("learning rate", "lr"),
              VAL_COLUMN: ("validation mIoU (single scale, no CRF)", "mIoU (%)")}
    title, ylabel = titles.get(column, (f"loss term: {column}", column))
    ax.set_title(title)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    if column == "lr":
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def run_curves_figure(runs):
    """The matplotlib Figure of ``runs`` [(name, rows)]."""
    from matplotlib.figure import Figure

    columns = panel_columns(runs)
    cols = min(PANELS_PER_ROW, len(columns))
    rows = math.ceil(len(columns) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, column in zip(axes, columns):
        _panel(ax, column, runs)
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    fig.suptitle("training runs: " + ", ".join(name for name, _ in runs))
    fig.tight_layout()
    return fig


def run(run_dirs, out_path):
    """Draw the runs of ``run_dirs`` into the PNG ``out_path``; return the panels' columns."""
    runs = [read_run(folder, name) for folder, name in zip(run_dirs, run_names(run_dirs))]
    atomic_write_bytes(out_path, figure_png(run_curves_figure(runs)))
    return panel_columns(runs)
