"""Seed folders remember what made them: a rerun continues only with the same weights and
settings, files cut short are made again, and several processes split the images exactly."""
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from infer_helpers import PAPER, infer_config, write_checkpoint
from lib.errors import UserError
from lib.network.checkpoint import save_state_dict
from lib.network.sgan import SGAN
from lib.records import names_to_write, read_record, record_path, weights_identity
from lib.stage2 import infer_cam
from lib.tooling.synthetic import generate_dataset
from lib.training.distributed import DistContext


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    generate_dataset(str(root), num_images=4, min_size=33, max_size=65, seed=8)
    return str(root)


def _pngs(folder):
    return {n: open(os.path.join(folder, n), "rb").read()
            for n in sorted(os.listdir(folder)) if n.endswith(".png")}


def test_the_record_holds_the_weights_and_the_settings(voc, tmp_path):
    checkpoint = write_checkpoint(str(tmp_path / "m.pth"))
    out = infer_cam.run(infer_config(voc, checkpoint, tmp_path / "res"))
    record = read_record(out)
    assert record["weights"] == weights_identity(checkpoint)
    assert record["cam_thresh"] == 0.25 and record["seed_mode"] == "threshold"
    assert record["resize"] == 65 and record["sdnet_path"] == "sal_snet"
    assert len(_pngs(out)) == 3 and os.path.isfile(out + ".record.yml")  # the training images


def test_a_rerun_with_other_settings_or_weights_stops_and_overwrite_rebuilds(voc, tmp_path):
    checkpoint = write_checkpoint(str(tmp_path / "m.pth"))
    out = infer_cam.run(infer_config(voc, checkpoint, tmp_path / "res"))
    before = _pngs(out)
    infer_cam.run(infer_config(voc, checkpoint, tmp_path / "res"))  # same: continues
    assert _pngs(out) == before

    with pytest.raises(UserError, match=r"cam_thresh 0.25 -> 0.3.*overwrite=true"):
        infer_cam.run(infer_config(voc, checkpoint, tmp_path / "res", cam_thresh=0.3))
    torch.manual_seed(1)  # a retrained model saved at the same path
    save_state_dict(SGAN(width_mult=0.125).state_dict(), checkpoint)
    with pytest.raises(UserError, match="weights sha256:"):
        infer_cam.run(infer_config(voc, checkpoint, tmp_path / "res"))
    assert _pngs(out) == before  # nothing was mixed in

    # seeds of a name the tags file no longer lists (an earlier tags file): a rebuild removes
    # them too, as they are not of the new settings
    with open(os.path.join(out, "2099_999999.png"), "wb") as f:
        f.write(next(iter(before.values())))
    infer_cam.run(infer_config(voc, checkpoint, tmp_path / "res", cam_thresh=0.3,
                               overwrite=True))
    assert read_record(out)["cam_thresh"] == 0.3
    assert read_record(out)["weights"] == weights_identity(checkpoint)
    fresh = infer_cam.run(infer_config(voc, checkpoint, tmp_path / "fresh", cam_thresh=0.3))
    assert _pngs(out) == _pngs(fresh)  # rebuilt: every file of the new settings


def test_a_folder_of_outputs_without_a_record_is_not_mixed_into(voc, tmp_path):
    checkpoint = write_checkpoint(str(tmp_path / "m.pth"))
    out = infer_cam.run(infer_config(voc, checkpoint, tmp_path / "res"))
    os.unlink(record_path(out))
    with pytest.raises(UserError, match=r"no record \(.*\.record\.yml\)"):
        infer_cam.run(infer_config(voc, checkpoint, tmp_path / "res"))


def test_a_file_cut_short_is_made_again(voc, tmp_path):
    checkpoint = write_checkpoint(str(tmp_path / "m.pth"))
    out = infer_cam.run(infer_config(voc, checkpoint, tmp_path / "res"))
    before = _pngs(out)
    name = sorted(before)[1]
    with open(os.path.join(out, name), "wb") as f:
        f.write(before[name][:len(before[name]) // 2])  # a power cut mid-write
    infer_cam.run(infer_config(voc, checkpoint, tmp_path / "res"))
    assert _pngs(out) == before


def test_the_cli_names_the_setting_that_differs_in_one_line(voc, tmp_path):
    checkpoint = write_checkpoint(str(tmp_path / "m.pth"))
    infer_cam.run(infer_config(voc, checkpoint, tmp_path / "res"))
    cmd = [sys.executable, "tools/stage2/infer_cam.py", "--cfg_file", PAPER,
           f"dataset_root={voc}", f"checkpoint={checkpoint}", f"res_path={tmp_path / 'res'}",
           "width_mult=0.125", "resize=65", "num_worker=0", "cam_thresh=0.3"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "cam_thresh 0.25 -> 0.3" in result.stderr


def test_each_image_has_one_owner_whatever_the_others_wrote_meanwhile():
    """Process 0 lists, then writes its first image, then process 1 lists: filtering before
    sharding (each process on its own listing) would give image c to nobody and d to both."""
    names = ["a", "b", "c", "d", "e", "f"]
    written = {"b"}  # there from an earlier run

    def done(name):
        return name in written

    rank0 = names_to_write(names, DistContext(0, 2, torch.device("cpu")), done, False)
    written.add(rank0[0])  # process 0 finishes an image before process 1 lists
    rank1 = names_to_write(names, DistContext(1, 2, torch.device("cpu")), done, False)
    assert not set(rank0) & set(rank1)
    assert set(rank0) | set(rank1) == set(names) - {"b"}
