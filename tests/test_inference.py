"""The inference skeleton every stage shares (lib.inference): folders that hold their outputs
and nothing else, their records beside them, and a log that ends with what a run wrote, also
when it stops."""
import os

import numpy as np
import pytest
from PIL import Image

from infer_helpers import (
    infer_config,
    infer_seg_config,
    make_seeds_config,
    write_checkpoint,
    write_classifier_checkpoint,
    write_seg_checkpoint,
)
from lib.network.deeplab import DeepLabV2
from lib.records import read_record, record_path
from lib.seeds import inference as seed_inference
from lib.stage1 import make_seeds
from lib.stage2 import infer_cam
from lib.stage3 import infer_seg


@pytest.fixture(scope="module")
def folders(synth_voc, tmp_path_factory):
    """{stage: the folder it wrote}: SGAN's seeds, the classifier's and the labels of val."""
    tmp = tmp_path_factory.mktemp("outputs")
    return {
        "infer_cam": infer_cam.run(infer_config(
            synth_voc, write_checkpoint(str(tmp / "sgan.pth")), tmp / "res")),
        "make_seeds": make_seeds.run(make_seeds_config(
            synth_voc, write_classifier_checkpoint(str(tmp / "cls.pth")), tmp / "ini",
            save_model_path=str(tmp / "model"))),
        "infer_seg": infer_seg.run(infer_seg_config(
            synth_voc, write_seg_checkpoint(str(tmp / "seg.pth")), tmp / "res"))}


def published_evaluator_reads(folder):
    """The published tools/eval_mIoU.py's loop: every entry of the folder opened as an image;
    the arrays by name."""
    return {name: np.array(Image.open(os.path.join(folder, name)))
            for name in os.listdir(folder)}


@pytest.mark.parametrize("stage", ["infer_cam", "make_seeds", "infer_seg"])
def test_the_published_evaluator_reads_every_output_folder_whole(folders, stage):
    folder = folders[stage]
    read = published_evaluator_reads(folder)
    assert read and all(name.endswith(".png") and array.ndim == 2
                        for name, array in read.items())
    assert os.path.isfile(folder + ".record.yml")  # what made it lies beside it
    assert read_record(folder)["weights"].startswith("sha256:")


def test_a_record_an_earlier_version_left_inside_its_folder_is_moved_beside_it(synth_voc,
                                                                             tmp_path):
    cfg = infer_config(synth_voc, write_checkpoint(str(tmp_path / "m.pth")), tmp_path)
    out = infer_cam.run(cfg)
    before = {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)}
    os.replace(record_path(out), os.path.join(out, "record.yml"))  # as earlier versions wrote
    with pytest.raises(Exception, match="cam_thresh 0.25 -> 0.3"):  # read where it lies
        infer_cam.run(infer_config(synth_voc, cfg.checkpoint, tmp_path, cam_thresh=0.3))
    infer_cam.run(cfg)
    assert {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)} == before
    assert read_record(out)["cam_thresh"] == 0.25 and os.path.isfile(record_path(out))
    log = open(out + ".log").read()
    assert log.count(f"moved the record of {out}") == 1
    infer_cam.run(cfg)
    assert open(out + ".log").read().count("moved the record") == 1


def _failing_after(count, write):
    """``write`` for the first ``count`` images, then an error."""
    done = []

    def failing(*args):
        if len(done) == count:
            raise RuntimeError("disk full")
        done.append(write(*args))
    return failing


@pytest.mark.parametrize("stage", ["infer_cam", "infer_seg"])
def test_a_run_that_stops_ends_its_log_with_what_it_wrote(stage, synth_voc, tmp_path,
                                                          monkeypatch):
    if stage == "infer_cam":
        monkeypatch.setattr(seed_inference, "write_image_outputs",
                            _failing_after(1, seed_inference.write_image_outputs))
        cfg = infer_config(synth_voc, write_checkpoint(str(tmp_path / "m.pth")), tmp_path)
        run, folder = infer_cam.run, infer_cam.output_settings(cfg).seed_dir
    else:
        monkeypatch.setattr(infer_seg, "write_labels", _failing_after(1, infer_seg.write_labels))
        cfg = infer_seg_config(synth_voc, write_seg_checkpoint(str(tmp_path / "seg.pth")),
                               tmp_path, test_batch_size=1)
        run, folder = infer_seg.run, infer_seg.segmentation_dir(cfg)
    with pytest.raises(RuntimeError, match="disk full"):
        run(cfg)
    last = open(folder + ".log").read().splitlines()[-1]
    assert "stopped by an error" in last and "1 images written, 0 skipped" in last, last
    assert "a rerun makes the rest" in last


def test_infer_seg_runs_a_batch_per_forward_and_labels_as_one_at_a_time(synth_voc, tmp_path,
                                                                        monkeypatch):
    """test_batch_size 3: the training images (sizes all different) in batches of 3, one
    forward per scale each; the PNGs are those of one image at a time, byte for byte (the
    zooms and sums are per image; batched convolutions may round differently in the last bit,
    far below what moves a label)."""
    batches = []

    class Recording(DeepLabV2):
        def forward(self, image):
            batches.append(len(image))
            return super().forward(image)

    monkeypatch.setattr(infer_seg, "deeplab_from_config", lambda cfg: Recording(
        cfg.seg_backbone, width_mult=cfg.width_mult))
    checkpoint = write_seg_checkpoint(str(tmp_path / "seg.pth"))
    pngs, forwards = {}, {}
    for size in (1, 3):
        batches.clear()
        folder = infer_seg.run(infer_seg_config(synth_voc, checkpoint, tmp_path / str(size),
                                                split="train", test_batch_size=size,
                                                seg_crf=True, crf_workers=0))
        pngs[size] = {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)}
        forwards[size] = list(batches)
    count = len(pngs[1])
    assert count >= 7 and len({Image.open(os.path.join(folder, n)).size for n in pngs[3]}) > 1
    assert forwards[1] == [1] * 2 * count  # two test scales
    shares = [3] * (count // 3) + ([count % 3] if count % 3 else [])
    assert forwards[3] == [n for n in shares for _ in range(2)]
    assert len(np.unique(np.concatenate([np.array(Image.open(os.path.join(folder, n))).ravel()
                                         for n in pngs[3]]))) > 2  # the labels follow the images
    assert pngs[3] == pngs[1]
