"""infer_cam outputs: the threshold path unchanged, CRF seeds in workers, class maps, pictures."""
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import REPO
from infer_helpers import PAPER, infer_config, write_checkpoint
from lib.dataset.voc12_sgan import VOC12SalInferDataset, saliency_background
from lib.errors import UserError
from lib.image import encode_png, read_grey, write_png
from lib.network.checkpoint import load_checkpoint, read_state_dict, save_state_dict
from lib.network.sgan import sgan_from_config
from lib.pictures.panels import colorize_labels
from lib.pictures.seed_figure import (
    BACKGROUND,
    GAP,
    MIN_PANEL_HEIGHT,
    TITLE_HEIGHT,
    enlargement,
    strip_panels,
)
from lib.seeds.class_maps import class_maps_dir, load_class_maps
from lib.seeds.crf import seeds_from_crf
from lib.seeds.inference import inference_dataset
from lib.seeds.threshold import seed_to_image_size, seeds_from_cams
from lib.seeds.writer import pictures_dir
from lib.stage2 import infer_cam
from lib.tooling.synthetic import generate_dataset
from lib.voc import UNLABELED, VOC_CLASSES


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(str(tmp_path_factory.mktemp("model") / "model.pth"))


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    """Six small synthetic images: enough for every kind of seed label, quick on a CPU."""
    root = tmp_path_factory.mktemp("voc")
    generate_dataset(str(root), num_images=6, min_size=33, max_size=72, seed=5)
    return str(root)


def _files(folder):
    """The files of an output folder and their bytes."""
    return {name: open(os.path.join(folder, name), "rb").read()
            for name in sorted(os.listdir(folder))}


def _expected_maps(cfg):
    """name -> (M, tags, bg, size) computed here, straight from the network and dataset, in
    batches of the same size (batched convolutions round differently)."""
    model = sgan_from_config(cfg)
    load_checkpoint(model, cfg.checkpoint)
    model.eval()
    dataset = VOC12SalInferDataset(cfg.dataset_root, cfg.cue_file, new_size=cfg.resize)
    expected = {}
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=cfg.test_batch_size):
            maps = infer_cam.class_maps(model, batch["image"], batch["sal"], True).numpy()
            for j, name in enumerate(batch["name"]):
                expected[name] = (maps[j], dataset.tags[name], batch["bg"][j].numpy(),
                                  batch["size"][j].numpy())
    return expected


def test_threshold_seeds_are_the_seeds_of_lib_seeds_byte_for_byte(voc, checkpoint,
                                                                   tmp_path):
    cfg = infer_config(voc, checkpoint, tmp_path)
    out = infer_cam.run(cfg)
    written = _files(out)
    expected = _expected_maps(cfg)
    assert sorted(written) == sorted(n + ".png" for n in expected)
    for name, (maps, tags, bg, size) in expected.items():
        seed = seed_to_image_size(seeds_from_cams(maps, tags, bg, 0.25), size)
        assert written[name + ".png"] == encode_png(seed), name
    name = os.path.basename(out)
    assert sorted(os.listdir(tmp_path)) == [name, name + ".log", name + ".record.yml"]


def test_crf_seeds_are_the_same_with_any_number_of_workers(voc, checkpoint, tmp_path):
    runs = {}
    for workers in (1, 2):
        cfg = infer_config(voc, checkpoint, tmp_path / f"w{workers}", seed_mode="crf",
                           crf_workers=workers, test_cfg="_crf", save_class_maps=True,
                           save_pictures=True)
        out = infer_cam.run(cfg)
        runs[workers] = [_files(out), _files(class_maps_dir(out)), _files(pictures_dir(out))]
        with open(out.rstrip("/") + ".log") as log:
            assert log.read().count("CRF in ") == 1  # where the CRFs ran, said once
    assert runs[1] == runs[2]
    seeds = [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
             for data in runs[1][0].values()]
    values = set(np.unique(np.concatenate([s.ravel() for s in seeds])).tolist())
    assert 0 in values and UNLABELED in values and values - {0, UNLABELED}
    threshold = _files(infer_cam.run(infer_config(voc, checkpoint, tmp_path / "t")))
    assert threshold.keys() == runs[1][0].keys() and threshold != runs[1][0]


def test_class_maps_hold_the_network_maps_tags_size_and_background(voc, checkpoint,
                                                                   tmp_path):
    cfg = infer_config(voc, checkpoint, tmp_path, save_class_maps=True,
                       combine_seedseg=True)
    out = infer_cam.run(cfg)
    expected = _expected_maps(cfg)
    folder = class_maps_dir(out)
    assert folder == out + "_maps" and len(os.listdir(folder)) == len(expected)
    for name, (maps, tags, bg, size) in expected.items():
        with np.load(os.path.join(folder, name + ".npz")) as raw:
            assert raw["maps"].dtype == np.float32 and raw["maps"].shape == (len(tags), 9, 9)
        record = load_class_maps(os.path.join(folder, name + ".npz"))
        np.testing.assert_array_equal(record["tags"], tags)
        np.testing.assert_array_equal(record["maps"][tags - 1], maps[tags - 1])
        others = np.setdiff1d(np.arange(20), tags - 1)
        assert not record["maps"][others].any()
        np.testing.assert_array_equal(record["bg"], bg)
        np.testing.assert_array_equal(record["size"], size)


def test_crf_run_writes_crf_seeds_and_titled_pictures(voc, checkpoint, tmp_path):
    cfg = infer_config(voc, checkpoint, tmp_path, seed_mode="crf", crf_workers=0,
                       test_cfg="_crf", save_pictures=True, crf_alpha_low=2.0)
    out = infer_cam.run(cfg)
    expected = _expected_maps(cfg)
    dataset = VOC12SalInferDataset(voc, "im_tags.pkl", new_size=cfg.resize)
    folder = pictures_dir(out)
    assert folder == out + "_pictures" and len(os.listdir(folder)) == len(dataset.names)
    unlabeled = colorize_labels(np.array([[UNLABELED]]))[0, 0].astype(int)
    assert np.abs(unlabeled - BACKGROUND).sum() > 300  # "unlabeled" shows on the background
    for name in dataset.names:
        image = cv2.imread(dataset.image_path(name))[:, :, ::-1]
        seed = cv2.imread(os.path.join(out, name + ".png"), cv2.IMREAD_GRAYSCALE)
        maps, tags = expected[name][:2]
        np.testing.assert_array_equal(seed, seeds_from_crf(maps, tags, image, alpha_low=2.0))
        picture = cv2.imread(os.path.join(folder, name + ".png"))[:, :, ::-1]
        titles, panels = strip_panels(image, seed, maps, tags)
        assert titles == ["image", "seeds", *(f"P({VOC_CLASSES[t]})" for t in sorted(tags))]
        np.testing.assert_array_equal(panels[0], image)
        np.testing.assert_array_equal(panels[1], colorize_labels(seed))
        factor = enlargement(image.shape[0])
        height, width = image.shape[0] * factor, image.shape[1] * factor
        assert height >= MIN_PANEL_HEIGHT
        below = picture[TITLE_HEIGHT + height:]
        assert below.shape[0] > 0 and (below != BACKGROUND).any()  # the legend
        assert picture.shape[1] > GAP + len(panels) * (width + GAP)  # the colour bar
        for k, panel in enumerate(panels):
            x = GAP + k * (width + GAP)
            shown = picture[TITLE_HEIGHT:TITLE_HEIGHT + height, x:x + width]
            if k < 2:
                np.testing.assert_array_equal(shown[::factor, ::factor], panel)
            else:
                assert not np.array_equal(shown[::factor, ::factor], image)
            assert (picture[:TITLE_HEIGHT, x:x + width] != BACKGROUND).any()  # its title


def test_existing_outputs_are_skipped_and_missing_extras_written(voc, checkpoint,
                                                                 tmp_path):
    out = infer_cam.run(infer_config(voc, checkpoint, tmp_path))
    stamps = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in os.listdir(out)}
    infer_cam.run(infer_config(voc, checkpoint, tmp_path))
    assert stamps == {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in os.listdir(out)}
    infer_cam.run(infer_config(voc, checkpoint, tmp_path, save_class_maps=True))
    seeds = [n for n in stamps if n.endswith(".png")]
    assert len(os.listdir(class_maps_dir(out))) == len(seeds) == 5  # the training images


def test_cli_reports_a_bad_crf_setting_in_one_line(voc, checkpoint, tmp_path):
    cmd = [sys.executable, "tools/stage2/infer_cam.py", "--cfg_file", PAPER,
           f"dataset_root={voc}", f"checkpoint={checkpoint}", f"res_path={tmp_path}",
           "seed_mode=crf", "crf_alpha_high=2"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "'crf_alpha_high'" in result.stderr


@pytest.fixture(scope="module")
def two_saliencies(voc, tmp_path_factory):
    """The voc tree with a second saliency folder, sal/inverted (255 - sal/sal_snet)."""
    root = tmp_path_factory.mktemp("two_saliencies") / "voc"
    shutil.copytree(voc, root)
    for png in sorted((root / "sal" / "sal_snet").iterdir()):
        write_png(str(root / "sal" / "inverted" / png.name), 255 - read_grey(str(png)))
    return str(root)


@pytest.fixture(scope="module")
def attending_checkpoint(tmp_path_factory):
    """write_checkpoint's network with gamma = 1: its maps depend on the attention mask."""
    path = write_checkpoint(str(tmp_path_factory.mktemp("model") / "attending.pth"))
    state = read_state_dict(path)
    state["gamma"] = torch.ones(1)
    save_state_dict(state, path)
    return path


def _run_records(root, checkpoint, res_path, **overrides):
    """(the bytes of every seed and class-map file, class-map record by name) of one
    infer_cam run."""
    out = infer_cam.run(infer_config(root, checkpoint, res_path, save_class_maps=True,
                                     **overrides))
    folder = class_maps_dir(out)
    records = {f[:-4]: load_class_maps(os.path.join(folder, f)) for f in os.listdir(folder)}
    return (_files(out), _files(folder)), records


def _same(a, b, key):
    return a.keys() == b.keys() and all(np.array_equal(a[n][key], b[n][key]) for n in a)


def test_inference_keys_act_where_spec_5_says(two_saliencies, attending_checkpoint, tmp_path):
    """resize is the input side; sal_subdir and sal_thresh make the attention mask (so the
    class maps), sdnet_path and bg_thresh the seeds' background; new_size is read by nothing."""
    runs = iter(range(100))

    def run(**overrides):
        return _run_records(two_saliencies, attending_checkpoint, tmp_path / str(next(runs)),
                            **overrides)

    files, base = run()
    assert run(new_size=33)[0] == files  # the same files, byte for byte
    assert all(r["bg"].shape == (5, 5) for r in run(resize=33)[1].values())
    assert all(r["bg"].shape == (9, 9) for r in base.values())

    def sal(folder, name):
        return read_grey(os.path.join(two_saliencies, "sal", folder, name + ".png"))

    for overrides in ({"sal_subdir": "inverted"}, {"sal_thresh": 0.5}):
        _, records = run(**overrides)
        assert not _same(records, base, "maps") and _same(records, base, "bg"), overrides
    for overrides, folder, bg_thresh in (({"sdnet_path": "inverted"}, "inverted", 0.06),
                                         ({"bg_thresh": 0.5}, "sal_snet", 0.5)):
        _, records = run(**overrides)
        assert _same(records, base, "maps") and not _same(records, base, "bg"), overrides
        for name, record in records.items():
            expected = saliency_background(sal(folder, name), 9, bg_thresh)
            np.testing.assert_array_equal(record["bg"], expected, err_msg=name)


def test_inference_checks_both_saliency_folders(two_saliencies, checkpoint, tmp_path):
    """A map missing from sdnet_path is named before anything is written; stage 1's network
    has no attention, so it reads sdnet_path alone."""
    root = tmp_path / "voc"
    shutil.copytree(two_saliencies, root)
    name = min(os.listdir(root / "sal" / "inverted"))
    os.remove(root / "sal" / "inverted" / name)
    cfg = infer_config(str(root), checkpoint, tmp_path / "out", sdnet_path="inverted")
    with pytest.raises(UserError, match="background saliency map missing: .*inverted/" + name):
        infer_cam.run(cfg)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.png"))
    assert set(inference_dataset(cfg).map_paths()) == {"saliency map", "background saliency map"}
    cfg = infer_config(str(root), checkpoint, tmp_path / "out", sal_subdir="none")
    classifier = inference_dataset(cfg, attends_to_saliency=False)
    assert list(classifier.map_paths()) == ["saliency map"]
    assert classifier.sal_dir == classifier.bg_dir == os.path.join(str(root), "sal", "sal_snet")
