"""Seed export for DSRG-style trainers: the id list and the SEC/DSRG localization-cue pickle."""
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from lib.dataset.tags import load_tags
from lib.errors import UserError
from lib.image import read_label_png, zoom_to
from lib.seeds.export import (
    cue_labels,
    cues_to_seed,
    export_seeds,
    id_list_lines,
    seed_names,
    seed_to_cues,
)


def run_cli(*args):
    return subprocess.run([sys.executable, "tools/export_seeds.py", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_id_list_lines_have_image_and_seed_paths():
    assert id_list_lines(["a", "b_1"], "result/sgan/") == [
        "JPEGImages/a.jpg result/sgan/a.png", "JPEGImages/b_1.jpg result/sgan/b_1.png"]


def test_cues_of_a_hand_made_seed():
    seed = np.full((82, 82), 21, np.uint8)
    seed[:2, :2] = 0        # -> cue cell (0, 0)
    seed[80:, 80:] = 7      # -> cue cell (40, 40)
    seed[40:42, 2:4] = 255  # ignore: no cue
    cues = seed_to_cues(seed)
    assert cues.dtype == np.int64 and type(cues) is np.ndarray
    np.testing.assert_array_equal(cues, [[0, 7], [0, 40], [0, 40]])


def test_cues_round_trip_to_the_41_by_41_seed(synth_voc):
    folder = os.path.join(synth_voc, "SegmentationClassAug")  # 0..20 and 255 borders
    for name in seed_names(folder)[:6]:
        seed = read_label_png(os.path.join(folder, name + ".png"))
        seed = np.where(np.arange(seed.size).reshape(seed.shape) % 7 == 0, 21, seed)
        cues = seed_to_cues(seed)
        assert cues.shape[0] == 3 and (np.diff(cues[0]) >= 0).all()  # sorted by class
        small = zoom_to(seed.astype(np.uint8), (41, 41), order=0)
        expected = np.where(small <= 20, small, 21)
        np.testing.assert_array_equal(cues_to_seed(cues), expected)
        assert cues.shape[1] == (small <= 20).sum() and set(cues[0]) <= set(range(21))


def test_export_writes_list_and_protocol_2_cue_pickle(synth_voc, tmp_path):
    seeds = os.path.join(synth_voc, "ini_seed", "base_30_bg")
    names = seed_names(seeds)
    out_list, out_cues = tmp_path / "train.txt", tmp_path / "cues.pickle"
    assert export_seeds(seeds, out_list, seed_prefix="ini_seed/base_30_bg", cues_path=out_cues,
                        tags_path=os.path.join(synth_voc, "im_tags.pkl")) == names
    assert out_list.read_text().splitlines() == [
        f"JPEGImages/{n}.jpg ini_seed/base_30_bg/{n}.png" for n in names]
    data = out_cues.read_bytes()
    assert data[:2] == b"\x80\x02"
    cues = pickle.loads(data)
    tags = load_tags(os.path.join(synth_voc, "im_tags.pkl"))
    assert set(cues) == {f"{n}_{kind}" for n in names for kind in ("cues", "labels")}
    for name in names:
        labels = cues[f"{name}_labels"]
        assert type(labels) is np.ndarray and labels.dtype == np.int64
        np.testing.assert_array_equal(labels, np.concatenate([[0], np.sort(tags[name])]))
        seed = read_label_png(os.path.join(seeds, name + ".png"))
        np.testing.assert_array_equal(cues[f"{name}_cues"], seed_to_cues(seed))
        assert set(cues[f"{name}_cues"][0]) - {0} <= set(tags[name])
    np.testing.assert_array_equal(cue_labels([15, 3, 3]), [0, 3, 15])


def test_export_of_listed_names_and_missing_tags(synth_voc, tmp_path):
    seeds = tmp_path / "seeds"
    shutil.copytree(os.path.join(synth_voc, "ini_seed", "base_30_bg"), seeds)
    names = seed_names(str(seeds))
    export_seeds(str(seeds), tmp_path / "two.txt", names=[names[3], names[1]])
    assert (tmp_path / "two.txt").read_text() == (
        f"JPEGImages/{names[3]}.jpg {seeds}/{names[3]}.png\n"
        f"JPEGImages/{names[1]}.jpg {seeds}/{names[1]}.png\n")
    with pytest.raises(UserError, match="no seeds"):
        export_seeds(str(seeds), tmp_path / "x.txt", names=["nope"])
    shutil.copy(seeds / f"{names[0]}.png", seeds / "untagged.png")
    with pytest.raises(UserError, match="no tags: untagged"):
        export_seeds(str(seeds), tmp_path / "x.txt", cues_path=tmp_path / "c.pickle",
                     tags_path=os.path.join(synth_voc, "im_tags.pkl"))


def test_cli(synth_voc, tmp_path):
    seeds = os.path.join(synth_voc, "ini_seed", "base_30_bg")
    proc = run_cli("--seeds", seeds, "--out_list", tmp_path / "l.txt", "--cues",
                   tmp_path / "c.pickle", "--tags", os.path.join(synth_voc, "im_tags.pkl"))
    assert proc.returncode == 0, proc.stderr
    assert "wrote 10 lines" in proc.stdout  # the seeds of the tree's 10 training images
    assert len(pickle.loads((tmp_path / "c.pickle").read_bytes())) == 20
    proc = run_cli("--seeds", seeds, "--out_list", tmp_path / "l.txt", "--cues", tmp_path / "c")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "tags" in proc.stderr


def test_cues_without_tags_name_the_option(synth_voc, tmp_path):
    seeds = os.path.join(synth_voc, "ini_seed", "base_30_bg")
    result = run_cli("--seeds", seeds, "--out_list", tmp_path / "l.txt", "--cues",
                     tmp_path / "c.pickle")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--cues needs --tags FILE" in result.stderr
    assert not (tmp_path / "l.txt").exists()
