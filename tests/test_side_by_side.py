"""Trainings side by side (the demo's segmentation networks): each process runs the whole
training of its config, and a failed one is one line naming its run and its console output."""
import logging
import os

import pytest
import torch

from conftest import REPO
from lib.config import load_config
from lib.errors import UserError
from lib.network.checkpoint import read_state_dict
from lib.paths import checkpoint_path
from lib.tooling.side_by_side import console_path, train_side_by_side


def test_each_process_trains_its_config_and_a_failure_names_its_run(synth_voc, tmp_path):
    small = [f"dataset_root={synth_voc}", "cue_file=im_tags.pkl", "resize=33", "max_iter=2",
             "step_size=2", "batch_size=2", "num_worker=0", "width_mult=0.125",
             f"save_model_path={tmp_path}", "seed_subdir=base_30_bg"]  # the generator's seeds
    demo = os.path.join(REPO, "config", "demo.yml")
    twins = [load_config(demo, small + [f"cfg_name={name}"]) for name in ("a", "b")]
    broken = load_config(demo, small + ["cfg_name=broken", "cue_file=no_such_tags.pkl"])

    with pytest.raises(UserError) as failed:
        train_side_by_side("lib.stage2.train_sgan", twins + [broken], logging.getLogger("test"))
    message = str(failed.value)
    assert "\n" not in message and "training broken failed" in message
    assert "no_such_tags.pkl" in message and console_path(broken) in message

    # the others finished: the same config gives the same weights in either process
    first, second = (read_state_dict(checkpoint_path(cfg)) for cfg in twins)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert "finished: iteration 2 of 2" in open(console_path(twins[0])).read()
