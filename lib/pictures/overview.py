"""The SGAN method overview (network, losses and seed generation) drawn as a PNG diagram
(``images/sgan_overview.png``, by ``tools/draw_overview.py``). Everything is drawn with
matplotlib boxes and arrows; no external assets are read."""
from lib.files import atomic_write_bytes
from lib.pictures.panels import figure_png

# Fill and edge colour per kind of block.
KIND_COLOURS = {
    "data": ("#dbe9f6", "#3b6ea5"),
    "network": ("#fde3c3", "#c0701a"),
    "operation": ("#eeeeee", "#666666"),
    "loss": ("#f8d0d0", "#b03030"),
    "output": ("#d5efd2", "#3c8a3a"),
}
KIND_LABELS = {
    "data": "data / input",
    "network": "learned layer",
    "operation": "fixed computation",
    "loss": "loss",
    "output": "output map",
}
WIDTH, HEIGHT = 160, 104  # drawing units; one unit is 10 px at the saved size


def box(ax, x, y, w, h, text, kind, fontsize=11):
    """A rounded box with its lower-left corner at (x, y); returns the mid-points of its sides."""
    from matplotlib.patches import FancyBboxPatch

    face, edge = KIND_COLOURS[kind]
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=1.2",
                                facecolor=face, edgecolor=edge, linewidth=1.6, zorder=2))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize,
            linespacing=1.35, zorder=3)
    return {"l": (x, y + h / 2), "r": (x + w, y + h / 2), "t": (x + w / 2, y + h),
            "b": (x + w / 2, y)}


def arrow(ax, start, end, label=None):
    """A straight arrow from ``start`` to ``end`` (drawing units), with an optional label above."""
    from matplotlib.patches import FancyArrowPatch

    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=16, linewidth=1.5,
                                 color="#333333", zorder=1, shrinkA=1, shrinkB=1))
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 1.2, label, ha="center",
                va="bottom", fontsize=10, color="#333333", zorder=3)


def elbow(ax, points):
    """A right-angled path through ``points`` with an arrow head on its last segment."""
    xs, ys = zip(*points[:-1])
    ax.plot(xs, ys, color="#333333", linewidth=1.5, zorder=1, solid_capstyle="butt")
    arrow(ax, points[-2], points[-1])


def group(ax, x, y, w, h, title):
    """A light dashed frame around related blocks, titled at its top-left."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=1.5",
                                facecolor="#fafafa", edgecolor="#999999", linewidth=1.2,
                                linestyle="--", zorder=0))
    ax.text(x + 1.5, y + h - 1.2, title, ha="left", va="top", fontsize=12.5,
            fontweight="bold", color="#444444")


def draw_overview(out_path):
    """Draw the diagram and write it to ``out_path`` as a PNG (atomically)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fig = Figure(figsize=(WIDTH / 10, HEIGHT / 10))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, WIDTH)
    ax.set_ylim(0, HEIGHT)
    ax.set_axis_off()
    ax.text(WIDTH / 2, HEIGHT - 3, "SGAN: saliency-guided self-attention network (training and "
            "seed generation)", ha="center", va="center", fontsize=16, fontweight="bold")

    # Inputs and backbone.
    image = box(ax, 2, 80, 20, 11, "Input image\n3 × S × S", "data")
    backbone = box(ax, 27, 80, 25, 11, "VGG16 backbone\n(DeepLab-style,\noutput stride 8)",
                   "network")
    feature = box(ax, 57, 80, 20, 11, "Feature X\n512 × h × w", "data")
    saliency = box(ax, 2, 41, 20, 11, "Saliency map\nS × S", "data")
    arrow(ax, image["r"], backbone["l"])
    arrow(ax, backbone["r"], feature["l"])

    # Saliency-guided self-attention: Q -> E <- K on top, saliency masks and A below.
    group(ax, 25, 34, 84, 41, "Saliency-guided self-attention")
    query = box(ax, 28, 55, 23, 10, "Q = f_query(X)\n1×1 conv 512→256", "network")
    energy = box(ax, 55, 55, 24, 10, r"$E = Q^{\top}K\,/\,\sqrt{256}$" + "\nN × N, N = h·w",
                 "operation")
    key = box(ax, 83, 55, 23, 10, "K = f_key(X)\n1×1 conv 512→256", "network")
    sal_mask = box(ax, 28, 38, 23, 12, "s: saliency at h × w\n> 0.06, border ring 0",
                   "operation")
    masks = box(ax, 55, 38, 24, 12, r"$F = s\,s^{\top}$" + "\n"
                + r"$B = (1-s)(1-s)^{\top} / \Sigma(1-s)$", "operation", fontsize=10.5)
    attention = box(ax, 83, 38, 23, 12, r"$A = \mathrm{norm}((E - \min E) F) + B$"
                    + "\nfg attends to fg,\nbg averages bg", "operation", fontsize=10)
    fork_y = 69.5
    for projection in (query, key):
        elbow(ax, [feature["b"], (feature["b"][0], fork_y), (projection["t"][0], fork_y),
                   projection["t"]])
    arrow(ax, query["r"], energy["l"])
    arrow(ax, key["l"], energy["r"])
    arrow(ax, saliency["r"], sal_mask["l"])
    arrow(ax, sal_mask["r"], masks["l"])
    arrow(ax, masks["r"], attention["l"])
    arrow(ax, energy["b"], attention["t"])

    fuse = box(ax, 108, 80, 48, 11,
               r"fuse = $\gamma\,A\,V + X$" + "\n(V = X; γ learned, init 0)", "network")
    arrow(ax, feature["r"], fuse["l"], label="residual X")
    elbow(ax, [attention["r"], (111.5, attention["r"][1]), (111.5, fuse["b"][1])])
    ax.text(110.4, 62, "context A V", ha="center", va="center", rotation=90, fontsize=10,
            color="#333333")

    # Two heads on fuse, with the labels their losses compare against.
    group(ax, 114, 3, 44, 73, "Heads on fuse (training)")
    ax.text(125.5, 69.5, "classification", ha="center", fontsize=11, style="italic")
    ax.text(147, 69.5, "seed segmentation", ha="center", fontsize=11, style="italic")
    fc6 = box(ax, 116, 57, 19, 11, "fc6_CAM 3×3 conv\n1024, ReLU,\nDropout", "network",
              fontsize=10)
    fc8 = box(ax, 116, 47, 19, 6, "fc8 1×1 conv 1024→20", "network", fontsize=10)
    cam = box(ax, 116, 37, 19, 6, "CAM 20 × h × w", "output", fontsize=10)
    gap = box(ax, 116, 27, 19, 6, "global avg pool", "operation", fontsize=10)
    cls_loss = box(ax, 116, 16, 19, 7, "multi-label soft\nmargin loss", "loss", fontsize=10)
    tags = box(ax, 116, 5, 19, 7, "image tags\n(multi-hot 20)", "data", fontsize=10)
    fc9 = box(ax, 138, 57, 18, 11, "fc9 1×1 conv\n512→20", "network", fontsize=10)
    seg = box(ax, 138, 37, 18, 6, "seg 20 × h × w", "output", fontsize=10)
    seg_loss = box(ax, 138, 16, 18, 7, "cross-entropy\n× 0.15", "loss", fontsize=10)
    seeds_in = box(ax, 138, 5, 18, 7, "initial seeds\n(h × w)", "data", fontsize=10)
    arrow(ax, (fc6["t"][0], fuse["b"][1]), fc6["t"])
    arrow(ax, (fc9["t"][0], fuse["b"][1]), fc9["t"])
    for upper, lower in ((fc6, fc8), (fc8, cam), (cam, gap), (gap, cls_loss), (fc9, seg),
                         (seg, seg_loss)):
        arrow(ax, upper["b"], lower["t"])
    ax.text(126.5, 24.2, "score (20)", ha="left", fontsize=9.5, color="#333333")
    arrow(ax, tags["t"], cls_loss["b"])
    arrow(ax, seeds_in["t"], seg_loss["b"])

    # Seed generation at inference.
    group(ax, 2, 3, 107, 28, "Seed generation at inference (eval mode, no flip)")
    merged = box(ax, 5, 12, 20, 11, "M = CAM + seg\n20 × h × w", "output")
    foreground = box(ax, 31, 12, 21, 11, "per tag c:\n" + r"$M_c > 0.25\,\max M_c$",
                     "operation")
    background = box(ax, 31, 4.5, 21, 5.5, "bg: saliency < 0.06", "operation", fontsize=10)
    paint = box(ax, 58, 10, 24, 15, "start at 21, bg → 0,\npaint classes by\ndecreasing area\n"
                "(smaller wins);\nboat/train on bg → 0", "operation", fontsize=10)
    seeds_out = box(ax, 88, 10, 19, 15, "seeds h × w\n0 bg, 1..20 class,\n21 unlabeled",
                    "output", fontsize=10)
    arrow(ax, merged["r"], foreground["l"])
    arrow(ax, foreground["r"], (paint["l"][0], foreground["r"][1]))
    elbow(ax, [background["r"], (55, background["r"][1]), (55, 13), (paint["l"][0], 13)])
    arrow(ax, paint["r"], seeds_out["l"])

    ax.legend(handles=[Patch(facecolor=KIND_COLOURS[k][0], edgecolor=KIND_COLOURS[k][1],
                             label=KIND_LABELS[k]) for k in KIND_COLOURS],
              loc="upper left", bbox_to_anchor=(0.01, 0.955), ncol=len(KIND_COLOURS),
              fontsize=10.5, frameon=False)

    atomic_write_bytes(out_path, figure_png(fig))
