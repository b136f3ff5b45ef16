"""The inference skeleton every stage shares (lib.inference): what it logs, also when a run
stops."""
import os

import pytest
import torch

from conftest import REPO
from infer_helpers import infer_config, write_checkpoint
from lib.config import load_config
from lib.network.checkpoint import save_state_dict
from lib.network.deeplab import DeepLabV2
from lib.seeds import inference as seed_inference
from lib.stage2 import infer_cam
from lib.stage3 import infer_seg

SEG = os.path.join(REPO, "config", "seg_deeplabv2_vgg16.yml")
WIDTH = 0.125


def seg_config(root, tmp_path, **overrides):
    """Stage 3's config for a quick CPU run on the synthetic tree (its val split)."""
    torch.manual_seed(0)
    checkpoint = tmp_path / "seg.pth"
    if not checkpoint.exists():
        save_state_dict(DeepLabV2(width_mult=WIDTH).state_dict(), str(checkpoint))
    return load_config(SEG, {"dataset_root": root, "checkpoint": str(checkpoint),
                             "width_mult": WIDTH, "test_scales": [33, 41], "seg_crf": False,
                             "num_worker": 0, "res_path": str(tmp_path / "res"), **overrides})


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
        cfg = seg_config(synth_voc, tmp_path, test_batch_size=1)
        run, folder = infer_seg.run, infer_seg.segmentation_dir(cfg)
    with pytest.raises(RuntimeError, match="disk full"):
        run(cfg)
    last = open(folder + ".log").read().splitlines()[-1]
    assert "stopped by an error" in last and "1 images written, 0 skipped" in last, last
    assert "a rerun makes the rest" in last
