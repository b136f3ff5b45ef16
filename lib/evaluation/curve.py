"""The threshold-curve step of ``tools/threshold_curve.py``: seed scores against cam_thresh
from the class maps infer_cam saved (``save_class_maps=true``), as a table, JSON and a plot."""
from lib.dataset.description import describe
from lib.errors import UserError
from lib.evaluation.sweep import curve_json_bytes, format_curve, parse_thresholds, sweep_thresholds
from lib.files import read_names, write_output
from lib.paths import dataset_path, result_dir
from lib.seeds.class_maps import class_maps_dir

# The config keys the curve reads (lib.cli warns of an override it does not read).
CONFIG_KEYS = frozenset({"cam_thresh", "cfg_name", "dataset_name", "dataset_root", "gt_path",
                         "ignore_conflict", "num_classes", "res_path", "test_cfg"})


def run(cfg, thresholds, maps=None, res_path=None, gt_path=None, num_classes=None,
        list_path=None, workers=None, json_path=None, plot_path=None, from_file=False):
    """Sweep ``thresholds`` (strings: ``start:stop:step`` or numbers) over the class maps in
    ``maps`` (default: the results folder + ``_maps``); print the table, write the JSON and
    the plot if asked. Returns the curve points."""
    dataset = describe(cfg)
    if (num_classes or cfg.num_classes) != dataset.seed_classes:
        raise UserError(f"the threshold curve evaluates seeds: it needs --num_classes "
                        f"{dataset.seed_classes} (dataset_name {cfg.dataset_name})")
    if maps is None:
        if res_path is None and not from_file:
            raise UserError("give --maps (or --res_path / --cfg_file to use their _maps folder)")
        maps = class_maps_dir(res_path or result_dir(cfg))
    gt_path = gt_path or dataset_path(cfg, cfg.gt_path)
    names = read_names(list_path) if list_path else None
    points = sweep_thresholds(maps, gt_path, parse_thresholds(thresholds),
                              ignore_conflict=cfg.ignore_conflict, names=names, workers=workers,
                              dataset=dataset)
    print(f"class maps: {maps}\nground truth: {gt_path}")
    print(format_curve(points, cfg.cam_thresh))
    if plot_path:
        from lib.pictures.curve import curve_plot_png

        write_output(plot_path, curve_plot_png(points, cfg.cam_thresh))
    if json_path:
        write_output(json_path, curve_json_bytes(points))
    return points
