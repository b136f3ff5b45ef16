"""Where the dense CRFs run (lib.crf.workers): ``crf_workers: auto`` by default, the cores of
this process where the CRFs handed over at once are large, this process where they are small."""
import logging
import os

import pytest
import torch

from lib.config import ConfigError, load_config
from lib.crf.workers import MIN_PARALLEL_WORK, CRFBatch, choose_crf_workers, crf_choice, crf_workers
from lib.stage3.train_seg import SegTraining, training_crf_batch
from lib.training.distributed import DistContext

SEG = "config/seg_deeplabv2_vgg16.yml"
PUBLISHED_BATCH = CRFBatch(images=15, side=41, labels=21, iterations=10)  # crop 321, batch 15
SMALL_BATCH = CRFBatch(images=2, side=9, labels=21, iterations=10)  # crop 65, batch 2 (tests)


def context(world_size=1):
    return DistContext(rank=0, world_size=world_size, device=torch.device("cpu"))


@pytest.fixture
def cores(monkeypatch):
    """Pretend this process may use ``n`` cores (its CPU affinity)."""
    def set_cores(n):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)
    return set_cores


def test_auto_is_the_default_and_counts_are_checked():
    assert load_config(None).crf_workers == "auto" == load_config(SEG).crf_workers
    assert load_config(None, ["crf_workers=3"]).crf_workers == 3
    for value in ("-1", "some", "1.5", "true"):
        with pytest.raises(ConfigError, match="'crf_workers'"):
            load_config(None, [f"crf_workers={value}"])


def test_the_published_batch_is_large_and_the_tests_batch_small():
    assert PUBLISHED_BATCH.work == 15 * 41 * 41 * 21 * 10 >= MIN_PARALLEL_WORK > SMALL_BATCH.work
    published = load_config(SEG)
    assert training_crf_batch(published, context()) == PUBLISHED_BATCH
    small = load_config(SEG, ["crop_size=65", "seg_resize=73", "batch_size=2"])
    assert training_crf_batch(small, context()) == SMALL_BATCH
    # each process's share of the global batch: 8 of 15 on 2 processes
    assert training_crf_batch(published, context(2)).images == 8


def test_auto_takes_the_cores_for_large_work_and_this_process_for_small_work():
    assert choose_crf_workers("auto", 2, PUBLISHED_BATCH) == (
        2, "crf_workers auto: 2 cores for this process")
    assert choose_crf_workers("auto", 2, SMALL_BATCH) == (
        0, "crf_workers auto: batches of 2 images of 9 x 9 are too small to gain")
    assert choose_crf_workers("auto", 64, PUBLISHED_BATCH)[0] == 15  # no more than the images
    assert choose_crf_workers("auto", 16)[0] == 16  # full-size images: always large
    # one core: a batch that waits for its CRFs runs them here; a pipeline keeps one worker
    assert choose_crf_workers("auto", 1, PUBLISHED_BATCH)[0] == 0
    assert choose_crf_workers("auto", 1, pipelined=True)[0] == 1


def test_a_count_is_taken_as_given_up_to_the_cores():
    assert choose_crf_workers(0, 8, PUBLISHED_BATCH) == (0, "crf_workers 0")
    assert choose_crf_workers(3, 8, SMALL_BATCH) == (3, "crf_workers 3")  # even if small
    assert choose_crf_workers(8, 2, PUBLISHED_BATCH) == (
        2, "crf_workers 8, 2 cores for this process")
    assert choose_crf_workers(1, 8, PUBLISHED_BATCH)[0] == 0
    assert choose_crf_workers(1, 8, pipelined=True)[0] == 1


def test_each_process_of_a_job_takes_its_share_of_the_cores(cores):
    cfg = load_config(SEG)
    cores(8)
    assert crf_choice(cfg, context(), PUBLISHED_BATCH) == (
        8, "CRF in 8 worker processes (crf_workers auto: 8 cores for this process)")
    assert crf_choice(cfg, context(4), PUBLISHED_BATCH)[0] == 2
    assert crf_choice(cfg, context(8), PUBLISHED_BATCH) == (0, (
        "CRF in this process (crf_workers auto: 1 core for this process; one worker process "
        "would only add the hand-off)"))
    assert crf_choice(cfg, context(8), pipelined=True)[1] == (
        "CRF in 1 worker process (crf_workers auto: 1 core for this process)")


def test_inference_logs_its_choice(cores, caplog):
    cores(2)
    logger = logging.getLogger("test_crf_workers")
    with caplog.at_level(logging.INFO, logger="test_crf_workers"):
        assert crf_workers(load_config(None), context(), logger, pipelined=True) == 2
    assert caplog.messages == ["CRF in 2 worker processes (crf_workers auto: 2 cores for this "
                               "process)"]


@pytest.mark.parametrize("overrides, workers", [
    (["crop_size=65", "seg_resize=73", "batch_size=2"], 0),  # the tests' 9 x 9 batches
    ([], 2),  # the published 15 x 41 x 41
])
def test_stage3_training_runs_its_crfs_where_auto_says(cores, overrides, workers):
    cores(2)
    task = SegTraining()
    task.start(load_config(SEG, overrides), context())
    try:
        assert task.crf.workers == workers
        assert (task.crf._pool is None) == (workers == 0)
        assert task.crf_line.startswith("CRF in this process" if workers == 0
                                        else "CRF in 2 worker processes")
    finally:
        task.stop(failed=False)
