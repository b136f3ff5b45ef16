"""The end-to-end demo on synthetic VOC-format data, sized for a CPU: the method from its real
inputs (images, image-level tags, saliency maps) to held-out segmentation.

1. Data: the synthetic generator's images; the tags file (every stage's cue_file) and the
   lists hold the training images (ImageSets/Segmentation/train.txt), val.txt is held out.
2. Stage 1: the classifier trained on the training images' tags; its CAMs make the initial
   seeds (make_seeds) and its backbone, vgg_init.pth, initialises every later network, as
   ImageNet weights do on VOC.
3. Stage 2: SGAN from that backbone on those seeds; its class maps swept over cam_thresh on
   the training images' ground truth, the best seed mIoU kept; its seeds at that threshold.
4. Stage 3: the segmentation network, from the same backbone, trained twice on the training
   images, once on the initial seeds and once on SGAN's seeds (side by side,
   lib.tooling.side_by_side), validated on the held-out images while it trains
   (``val_every``; nothing is chosen from those scores) and scored on them at the end
   (21-class mIoU, as the paper reports).
Every step is the code path used on VOC (train_cls, make_seeds, train_sgan, infer_cam, the
threshold sweep, train_seg, infer_seg, the evaluator); a step whose outputs exist for the same
settings and inputs is not run again, so a rerun is fast.
"""
import os

from lib.config import derived_config, load_config
from lib.dataset.description import describe
from lib.dataset.tags import load_tags
from lib.errors import UserError
from lib.evaluation.folder import evaluate_folder
from lib.evaluation.sweep import parse_thresholds, sweep_thresholds
from lib.files import atomic_write_bytes, read_names
from lib.paths import checkpoint_path, dataset_path, model_dir, result_dir, split_list_path
from lib.pictures import run_curves
from lib.records import record_path
from lib.seeds.class_maps import class_maps_dir
from lib.stage1 import make_seeds, train_cls
from lib.stage2 import infer_cam, train_sgan
from lib.stage3 import infer_seg, train_seg
from lib.tooling.demo_report import (
    draw_seed_figure,
    draw_segmentation_figure,
    seed_table,
    segmentation_table,
)
from lib.tooling.side_by_side import train_side_by_side
from lib.tooling.synthetic import generate_dataset
from lib.training.checkpointing import training_changes
from lib.training.run_folder import run_record_path
from lib.training.runtime import resolve_device, setup_logger

THRESHOLDS = "0.05:0.95:0.05"


def trained_with(cfg, keys, inputs=()):
    """True if the final checkpoint exists, was trained with this configuration (its ``keys``,
    those of the training step; the ones resume would accept may differ:
    lib.training.checkpointing.training_changes) and is newer than each of ``inputs`` (files
    whose change means new training data)."""
    saved = run_record_path(cfg)
    weights = checkpoint_path(cfg)
    if not (os.path.exists(weights) and os.path.exists(saved)):
        return False
    if any(os.path.getmtime(path) > os.path.getmtime(weights) for path in inputs
           if os.path.exists(path)):
        return False
    return not training_changes(load_config(saved), cfg, keys)


def train_missing(step, jobs, logger):
    """Train each config of ``jobs`` [(cfg, inputs)] with the training ``step`` unless it was
    trained already on ``inputs``; a run of other settings in the demo's own run folder is
    replaced (overwrite). Several trainings run side by side. Returns the configs' names that
    were trained: the outputs of their previous weights are rebuilt, not continued."""
    todo = []
    for cfg, inputs in jobs:
        if trained_with(cfg, step.CONFIG_KEYS, inputs):
            logger.info("found %s trained with this config; delete it to train again",
                        checkpoint_path(cfg))
        else:
            todo.append(derived_config(cfg, overwrite=True))
    if len(todo) == 1:
        step.run(todo[0])
    elif todo:
        train_side_by_side(step.__name__, todo, logger)
    return {cfg.cfg_name for cfg in todo}


def prepare_data(cfg, num_images, min_size, max_size, data_seed, logger):
    """Generate the synthetic tree if absent; return the training images' names (the tags
    file's). A UserError if the tags file lists a held-out image (a tree of an older
    generator, whose tags covered every image)."""
    tags_file = dataset_path(cfg, cfg.cue_file)
    if not os.path.exists(tags_file):
        logger.info("generating %d synthetic images in %s", num_images, cfg.dataset_root)
        generate_dataset(cfg.dataset_root, num_images=num_images, min_size=min_size,
                         max_size=max_size, seed=data_seed, sal_subdir=cfg.sal_subdir)
    train = sorted(load_tags(tags_file))
    held_out = set(read_names(split_list_path(derived_config(cfg, split="val")))) & set(train)
    if held_out:
        raise UserError(f"{tags_file} lists held-out images of val.txt ({len(held_out)}, e.g. "
                        f"{min(held_out)}): an older generator's tree; delete "
                        f"{cfg.dataset_root} to generate it again")
    return train


def stage1_config(cfg, cls_cfg):
    """Stage 1's config in the demo's data and folders: the keys SGAN shares with it follow
    ``cfg``; the initial seeds go to ini_seed/<seed_subdir>_<fg_thresh>, so seeds of another
    fg_thresh get a folder of their own (as the published base_30_bg names its 30%)."""
    return derived_config(cls_cfg, dataset_root=cfg.dataset_root, cue_file=cfg.cue_file,
                          save_model_path=cfg.save_model_path, device=cfg.device,
                          sdnet_path=cfg.sdnet_path,
                          seed_subdir=f"{cfg.seed_subdir}_{cls_cfg.fg_thresh:g}")


def stage1(cls_cfg, logger):
    """Stage 1: the classifier trained on the training images' tags, then the initial seeds
    from its CAMs (anew if it was retrained); returns (its vgg_init.pth, the seed folder)."""
    tags_file = dataset_path(cls_cfg, cls_cfg.cue_file)  # newer: new data, train again
    retrained = bool(train_missing(train_cls, [(cls_cfg, [tags_file])], logger))
    seed_dir = make_seeds.run(derived_config(cls_cfg, overwrite=retrained or cls_cfg.overwrite))
    return os.path.join(model_dir(cls_cfg), train_cls.VGG_INIT_NAME), seed_dir


def sgan_seeds(cfg, train_names, inputs, logger):
    """Stage 2: SGAN (trained again if one of ``inputs`` is newer than its weights), then its
    seeds of the training images at the cam_thresh of the best seed mIoU on them; returns
    (the config of those seeds, the sweep)."""
    overwrite = bool(train_missing(train_sgan, [(cfg, inputs)], logger)) or cfg.overwrite
    swept = derived_config(cfg, test_cfg=f"{cfg.test_cfg}_{cfg.cam_thresh:g}",
                           save_class_maps=True, overwrite=overwrite)
    maps = class_maps_dir(infer_cam.run(swept))
    points = sweep_thresholds(maps, dataset_path(cfg, cfg.gt_path), parse_thresholds([THRESHOLDS]),
                              names=train_names, progress=False)
    best = max(points, key=lambda p: p["mIoU"])["cam_thresh"]
    logger.info("cam_thresh %g: the best seed mIoU on the training images (%.2f)", best,
                100 * max(p["mIoU"] for p in points))
    chosen = derived_config(cfg, cam_thresh=best, test_cfg=f"{cfg.test_cfg}_{best:g}")
    if overwrite and result_dir(chosen) != result_dir(swept):  # else just rebuilt by the sweep
        chosen = derived_config(chosen, overwrite=True)
    infer_cam.run(chosen)
    return chosen, points


def segmentation_config(cfg, seg_cfg, name, seed_dir, backbone):
    """Stage 3's config for the run ``name`` on ``seed_dir`` from the ``backbone`` file, in
    the demo's data and folders."""
    return derived_config(seg_cfg, cfg_name=f"{seg_cfg.cfg_name}_{name}", seed_dir=seed_dir,
                          seg_pretrain=backbone, dataset_root=cfg.dataset_root,
                          cue_file=cfg.cue_file, save_model_path=cfg.save_model_path,
                          res_path=cfg.res_path, device=cfg.device)


def label_and_score(run_cfg, retrained):
    """Label the held-out split with the trained network (anew if it was ``retrained``) and
    score it (C + 1 classes)."""
    labels = infer_seg.run(derived_config(run_cfg, overwrite=retrained or run_cfg.overwrite))
    names = read_names(split_list_path(run_cfg))
    dataset = describe(run_cfg)
    gt = dataset_path(run_cfg, dataset.segmentation_gt)
    return evaluate_folder(labels, gt, dataset.num_classes, names=names, progress=False)


def run(cls_cfg, cfg, seg_cfg, num_images=200, min_size=64, max_size=128, data_seed=0,
        seed_figure=None, segmentation_figure=None, curves_figure=None, figure_rows=6):
    """The whole demo (``cls_cfg``, ``cfg``, ``seg_cfg``: stages 1, 2 and 3); prints and
    writes the two tables, draws the figures. Returns {"seeds": {"initial", "sgan"},
    "segmentation": {"initial", "sgan"}, "cam_thresh"}."""
    logger = setup_logger("sgan.demo")
    train_names = prepare_data(cfg, num_images, min_size, max_size, data_seed, logger)
    cls_cfg = stage1_config(cfg, cls_cfg)
    backbone, initial_dir = stage1(cls_cfg, logger)
    chosen, _ = sgan_seeds(derived_config(cfg, pretrain=backbone, seed_subdir=cls_cfg.seed_subdir),
                           train_names, (backbone, record_path(initial_dir)), logger)

    gt = dataset_path(cfg, cfg.gt_path)
    seed_dirs = {"initial": initial_dir, "sgan": result_dir(chosen)}
    seeds = {key: evaluate_folder(folder, gt, describe(cfg).seed_classes, names=train_names,
                                  progress=False)
             for key, folder in seed_dirs.items()}
    runs = {key: segmentation_config(cfg, seg_cfg, key, folder, backbone)
            for key, folder in seed_dirs.items()}
    trained = train_missing(train_seg, [(runs[key], [record_path(seed_dirs[key]), backbone])
                                        for key in runs], logger)  # newer inputs: train again
    segmentation = {key: label_and_score(run_cfg, run_cfg.cfg_name in trained)
                    for key, run_cfg in runs.items()}

    report = (f"Seeds of the {len(train_names)} training images (initial seeds: stage 1's "
              f"CAMs at fg_thresh {cls_cfg.fg_thresh:g}; SGAN at cam_thresh "
              f"{chosen.cam_thresh:g}, chosen on them)\n"
              f"{seed_table(seeds['initial'], seeds['sgan'])}\n\n"
              f"Segmentation of the {segmentation['initial']['num_images']} held-out val "
              f"images: DeepLab-v2 trained on each kind of seeds (IoU %)\n"
              f"{segmentation_table(segmentation['initial'], segmentation['sgan'])}")
    print(report)
    atomic_write_bytes(os.path.join(model_dir(cfg), "demo_results.txt"), (report + "\n").encode())
    if seed_figure:
        draw_seed_figure(chosen, seed_dirs["initial"], train_names[:figure_rows], seed_figure,
                         resolve_device(cfg.device))
        logger.info("seed figure written to %s", seed_figure)
    if segmentation_figure:
        val = read_names(split_list_path(runs["initial"]))[:figure_rows]
        draw_segmentation_figure(runs["initial"], runs["sgan"],
                                 dataset_path(cfg, describe(cfg).segmentation_gt), val,
                                 segmentation_figure)
        logger.info("segmentation figure written to %s", segmentation_figure)
    if curves_figure:
        run_curves.run([model_dir(runs[key]) for key in ("initial", "sgan")], curves_figure)
        logger.info("training curves written to %s", curves_figure)
    return {"seeds": seeds, "segmentation": segmentation, "cam_thresh": chosen.cam_thresh}
