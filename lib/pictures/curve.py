"""The threshold curve of lib.evaluation.sweep as a picture: precision against recall, and
precision, recall and mIoU against cam_thresh."""
import numpy as np

from lib.pictures.panels import figure_png


def curve_plot_png(points, title="seeds against cam_thresh"):
    """PNG bytes: precision against recall with each point's threshold, and precision,
    recall and mIoU against the threshold."""
    thresholds = np.array([p["cam_thresh"] for p in points])
    mp, mr, miou = (100 * np.array([p[k] for p in points]) for k in ("mp", "mr", "mIoU"))
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2))
    pr_ax, sweep_ax = fig.subplots(1, 2)
    pr_ax.plot(mr, mp, "o-", color="tab:blue", markersize=4)
    for t, x, y in zip(thresholds, mr, mp):
        pr_ax.annotate(f"{t:g}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    pr_ax.set_xlabel("mean recall (%)")
    pr_ax.set_ylabel("mean precision (%)")
    pr_ax.set_title("precision-recall (labels: cam_thresh)")
    pr_ax.grid(alpha=0.3)
    for values, label in ((mp, "precision"), (mr, "recall"), (miou, "mIoU")):
        sweep_ax.plot(thresholds, values, "o-", markersize=3, label=label)
    sweep_ax.set_xlabel("cam_thresh")
    sweep_ax.set_ylabel("%")
    sweep_ax.set_title(title)
    sweep_ax.grid(alpha=0.3)
    sweep_ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


