"""Stage 3 through its scripts on synthetic data: initial weights, training on the seeds with
the CRF loss, multi-scale inference with the CRF, 21-class evaluation; resume, parallel CRFs,
the solver's schedule, bad inputs; the ResNet-101 network and its input normalisation."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from conftest import REPO
from infer_helpers import WIDTH, write_seg_checkpoint
from lib.config import ConfigError, load_config
from lib.image import read_image, scipy_zoom_to
from lib.network.checkpoint import read_state_dict
from lib.network.deeplab import DeepLabV2
from lib.normalisation import PUBLISHED_TEST_INPUT, inference_normalisation, training_normalisation
from lib.records import read_record
from lib.stage3 import infer_seg
from lib.stage3.train_seg import SegTraining
from lib.tooling.synthetic import generate_dataset

SEG = os.path.join(REPO, "config", "seg_deeplabv2_vgg16.yml")
RESNET = os.path.join(REPO, "config", "seg_deeplabv2_resnet101.yml")
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
SMALL = ["seg_resize=73", "crop_size=65", "batch_size=2", "num_worker=0", "display_step=1",
         "test_scales=[49,65]"]
# Where the published width and initial weights do not matter: a narrow DeepLab from scratch.
NARROW = ["init=kaiming", "width_mult=0.125"]
# ResNet-101 has no narrow form: the smallest crop and one test scale instead.
RESNET_SMALL = ["seg_resize=41", "crop_size=33", "test_scales=[33]"]


def run_tool(script, *args, cwd, env=None):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", script), *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def one_line(result):
    return result.returncode == 2 and result.stderr.count("\n") == 1


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A working folder with a synthetic VOC tree (seeds in ini_seed/base_30_bg) and the
    initial weights made by tools/stage3/make_init.py from a random torchvision VGG16."""
    work = tmp_path_factory.mktemp("stage3")
    generate_dataset(str(work / "voc"), num_images=10, min_size=48, max_size=96, seed=2)
    torch.manual_seed(0)
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), work / "vgg16.pth")
    made = run_tool("stage3/make_init.py", "--source", "vgg16.pth", "--out", "init.pth", cwd=work)
    assert made.returncode == 0, made.stderr
    return work


def config_args(*extra, cfg_file=SEG, pretrain="init.pth"):
    return ["--cfg_file", cfg_file, "dataset_root=voc", "seed_dir=voc/ini_seed/base_30_bg",
            f"seg_pretrain={pretrain}", *SMALL, *extra]


def infer_args(*extra, cfg_file=SEG, scales="[49,65]"):
    """infer_seg.py's arguments: only keys it reads (another is a warning line)."""
    return ["--cfg_file", cfg_file, "dataset_root=voc", "num_worker=0", f"test_scales={scales}",
            *extra]


def train(work, *extra, env=None, narrow=True):
    """train_seg.py on the work folder: a NARROW network from scratch, or (``narrow`` False)
    the published width from make_init's weights."""
    args = config_args(*NARROW, *extra, pretrain="") if narrow else config_args(*extra)
    return run_tool("stage3/train_seg.py", *args, cwd=work, env=env)


def test_train_infer_evaluate_through_the_scripts(work):
    result = train(work, "max_iter=4", "step_size=2", "lr_step=2", "lr_gamma=0.5", narrow=False)
    assert result.returncode == 0, result.stderr
    run_dir = work / "model" / "seg_deeplabv2_vgg16"
    assert {"model_iter_2.pth", "model_iter_4.pth", "train_state.pth", "config.yml"} <= \
        set(os.listdir(run_dir))
    state = read_state_dict(str(run_dir / "model_iter_4.pth"))
    assert list(state) == list(DeepLabV2().state_dict())  # the Caffe layer names
    log = (run_dir / "train.log").read_text()
    # Caffe's step schedule: lr x 0.5 after 2 iterations; the log shows both loss terms
    assert "iter 2/4 loss" in log and "lr 1.000e-03" in log and "lr 5.000e-04" in log
    assert " seed " in log and " constrain " in log
    # said once each, before the first iteration: the seeds' class mix, that they are initial
    # seeds (the generator's), and where the CRFs of the 9 x 9 batches run (crf_workers auto)
    first_iteration = log.index("iter 1/4")
    for line in ("seeds in voc/ini_seed/base_30_bg: ", "looks like initial seeds",
                 "CRF in this process (crf_workers auto: batches of 2 images of 9 x 9 are too "
                 "small to gain)"):
        assert log.count(line) == 1 and log.index(line) < first_iteration, line

    result = run_tool("stage3/infer_seg.py", *infer_args("max_iter=4"), cwd=work)
    assert result.returncode == 0, result.stderr
    out = work / "result" / "seg_deeplabv2_vgg16_val"
    val = (work / "voc" / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert sorted(f[:-4] for f in os.listdir(out) if f.endswith(".png")) == sorted(val)
    for name in val:
        with Image.open(out / f"{name}.png") as labels, \
                Image.open(work / "voc" / "JPEGImages" / f"{name}.jpg") as image:
            assert labels.mode == "P" and labels.size == image.size
            assert np.asarray(labels).max() <= 20
    assert read_record(str(out))["seg_crf"] is True
    assert (work / "result" / "seg_deeplabv2_vgg16_val.log").read_text().count("CRF in ") == 1

    scores = work / "scores.json"
    result = run_tool("eval_mIoU.py", "--cfg_file", SEG, "dataset_root=voc", "--num_classes",
                      "21", "--json", scores, cwd=work)
    assert result.returncode == 0, result.stderr
    assert f"predictions: {os.path.join('result', 'seg_deeplabv2_vgg16_val')}" in result.stdout
    assert "SegmentationClass" in result.stdout and f"{len(val)} images, 21 classes" in \
        result.stdout
    assert 0 <= json.loads(scores.read_text())["mIoU"] <= 1


def test_an_interrupted_run_resumes_to_the_same_weights(work):
    straight = train(work, "cfg_name=straight", "max_iter=4", "step_size=2")
    assert straight.returncode == 0, straight.stderr
    # Ctrl-C right after iteration 2 (and its checkpoint), then resume=true
    interrupted = train(work, "cfg_name=resumed", "max_iter=4", "step_size=2",
                        env={**os.environ, "SGAN_SIGNAL_AT": "iteration:2:SIGINT"})
    assert interrupted.returncode == 130
    assert not (work / "model" / "resumed" / "model_iter_4.pth").exists()
    refused = train(work, "cfg_name=resumed", "max_iter=4", "step_size=2", "lr_gamma=0.5",
                    "resume=true")
    assert one_line(refused) and "lr_gamma" in refused.stderr  # the schedule belongs to a run
    resumed = train(work, "cfg_name=resumed", "max_iter=4", "step_size=2", "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    ours = read_state_dict(str(work / "model" / "resumed" / "model_iter_4.pth"))
    reference = read_state_dict(str(work / "model" / "straight" / "model_iter_4.pth"))
    for key, value in reference.items():
        assert torch.equal(ours[key], value), key


def test_overwrite_with_a_network_the_config_cannot_build_keeps_the_run(work):
    kept = train(work, "cfg_name=kept", "max_iter=1")
    assert kept.returncode == 0, kept.stderr
    run_dir = work / "model" / "kept"
    before = {name: (run_dir / name).read_bytes() for name in os.listdir(run_dir)}
    assert {"model_iter_1.pth", "train_state.pth", "config.yml", "train.log"} <= set(before)
    refused = run_tool("stage3/train_seg.py", *config_args(
        "cfg_name=kept", "max_iter=1", "width_mult=0.25", "overwrite=true", cfg_file=RESNET,
        pretrain=""), cwd=work)
    assert one_line(refused) and "'width_mult' narrows the vgg16 backbone only" in refused.stderr
    assert before == {name: (run_dir / name).read_bytes() for name in os.listdir(run_dir)}


def test_the_crfs_of_a_batch_in_workers_train_the_same_weights(work):
    for workers in (0, 2):
        result = train(work, f"cfg_name=crf{workers}", "max_iter=2", f"crf_workers={workers}")
        assert result.returncode == 0, result.stderr
    serial = read_state_dict(str(work / "model" / "crf0" / "model_iter_2.pth"))
    parallel = read_state_dict(str(work / "model" / "crf2" / "model_iter_2.pth"))
    assert all(torch.equal(serial[k], parallel[k]) for k in serial)


def test_bad_and_missing_seeds_are_one_line_errors_before_training(work, tmp_path):
    seeds = tmp_path / "seeds"
    shutil.copytree(work / "voc" / "ini_seed" / "base_30_bg", seeds)
    first, second = sorted(os.listdir(seeds))[:2]
    bad = np.asarray(Image.open(seeds / first)).copy()
    bad[0, 0] = 22
    Image.fromarray(bad).save(seeds / first)
    result = train(work, "cfg_name=bad", "max_iter=2", f"seed_dir={seeds}")
    assert one_line(result) and str(seeds / first) in result.stderr and "22" in result.stderr
    os.unlink(seeds / second)
    result = train(work, "cfg_name=bad", "max_iter=2", f"seed_dir={seeds}")
    assert one_line(result) and "missing" in result.stderr and second in result.stderr
    assert not (work / "model" / "bad").exists()


def test_restrict_to_tags_needs_tags_for_every_name_of_the_split(work, tmp_path):
    voc = tmp_path / "voc"
    shutil.copytree(work / "voc", voc)
    train = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    tags = json.loads((voc / "im_tags.json").read_text())  # the training images'
    del tags[train[1]]
    (voc / "tags.json").write_text(json.dumps(tags))
    result = run_tool("stage3/infer_seg.py", *infer_args(
        f"dataset_root={voc}", "cue_file=tags.json", "split=train", "restrict_to_tags=true",
        f"checkpoint={write_seg_checkpoint(str(tmp_path / 'm.pth'))}", f"width_mult={WIDTH}"),
        cwd=work)
    assert one_line(result) and train[1] in result.stderr and "restrict_to_tags" in result.stderr


@pytest.fixture(scope="module")
def resnet_run(work):
    """ResNet-101 through the scripts: make_init from a random torchvision ResNet-101 file,
    two training iterations at 33 px, batch 2, with config/seg_deeplabv2_resnet101.yml."""
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet101(weights=None).state_dict(), work / "resnet101.pth")
    made = run_tool("stage3/make_init.py", "--backbone", "resnet101", "--source",
                    "resnet101.pth", "--out", "resnet101_init.pth", cwd=work)
    assert made.returncode == 0, made.stderr
    result = run_tool("stage3/train_seg.py", *config_args(
        "max_iter=2", *RESNET_SMALL, cfg_file=RESNET, pretrain="resnet101_init.pth"), cwd=work)
    assert result.returncode == 0, result.stderr
    return work / "model" / "seg_deeplabv2_resnet101"


def test_resnet101_trains_and_labels_through_the_scripts(work, resnet_run):
    init = read_state_dict(str(work / "resnet101_init.pth"))
    trained = read_state_dict(str(resnet_run / "model_iter_2.pth"))
    assert list(trained) == list(DeepLabV2("resnet101").state_dict())
    frozen = [k for k in init if k.endswith(("running_mean", "running_var", "bn1.weight"))]
    assert len(frozen) > 100 and all(torch.equal(trained[k], init[k]) for k in frozen)
    for key in ("backbone.conv1.weight", "backbone.layer4.2.conv3.weight", "aspp.0.weight"):
        assert not torch.equal(trained[key], init.get(key, torch.zeros(0))), key
    assert "iter 2/2 loss" in (resnet_run / "train.log").read_text()

    result = run_tool("stage3/infer_seg.py", *infer_args("max_iter=2", "seg_crf=false",
                                                         cfg_file=RESNET, scales="[33]"), cwd=work)
    assert result.returncode == 0, result.stderr
    out = work / "result" / "seg_deeplabv2_resnet101_val"
    val = (work / "voc" / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert sorted(f[:-4] for f in os.listdir(out) if f.endswith(".png")) == sorted(val)
    record = read_record(str(out))
    assert record["seg_backbone"] == "resnet101" and record["std"] == list(IMAGENET[1])


def test_resnet101_is_fed_imagenet_normalised_rgb_at_test(work, resnet_run, monkeypatch):
    """infer_seg hands the network RGB / 255 minus ImageNet's mean, / std (not the VGG mean)."""
    seen = []

    class Recording(DeepLabV2):
        def forward(self, image):
            seen.append(image.clone())
            return super().forward(image)

    monkeypatch.chdir(work)
    monkeypatch.setattr(infer_seg, "deeplab_from_config",
                        lambda cfg: Recording(cfg.seg_backbone, width_mult=cfg.width_mult))
    cfg = load_config(RESNET, config_args("max_iter=2", "seg_crf=false", "cfg_name=spy",
                                          f"checkpoint={resnet_run / 'model_iter_2.pth'}",
                                          *RESNET_SMALL, cfg_file=RESNET)[2:])
    infer_seg.run(cfg)
    first = sorted((work / "voc" / "ImageSets" / "Segmentation" / "val.txt").read_text().split())[0]
    image = read_image(str(work / "voc" / "JPEGImages" / f"{first}.jpg"))[:, :, ::-1]
    zoomed = scipy_zoom_to(image.astype(np.float32), (33, 33), order=1) / 255
    expected = (zoomed - np.asarray(IMAGENET[0])) / np.asarray(IMAGENET[1])
    np.testing.assert_allclose(seen[0][0].numpy(), expected.transpose(2, 0, 1), atol=1e-3)


def test_each_backbone_gets_its_own_input_normalisation():
    vgg, resnet = load_config(SEG), load_config(RESNET)
    assert training_normalisation(vgg) == (tuple(np.float32(vgg.mean).tolist()), None)
    assert inference_normalisation(vgg) == PUBLISHED_TEST_INPUT == ((104.0, 117.0, 123.0), None)
    assert training_normalisation(resnet) == inference_normalisation(resnet) == IMAGENET
    assert SegTraining().normalisation(resnet) == IMAGENET


@pytest.mark.parametrize("cfg_file, override, key", [
    (SEG, "std=[0.229,0.224,0.225]", "mean"), (SEG, "mean=[0.5,0.5,0.5]", "mean"),
    (RESNET, "std=null", "mean"), (RESNET, "std=null mean=[104,117,123]", "std"),
    (RESNET, "mean=[104.008,116.669,122.675]", "mean")])
def test_an_input_scale_the_backbone_was_not_made_for_is_refused(cfg_file, override, key):
    cfg = load_config(cfg_file, override.split())
    for normalisation in (training_normalisation, inference_normalisation):
        with pytest.raises(ConfigError, match=f"'{key}'"):
            normalisation(cfg)


def test_vgg16_may_take_imagenet_input():
    """The CPU demo's vgg16, whose initial weights were trained on ImageNet's input."""
    cfg = load_config(SEG, ["std=[0.229, 0.224, 0.225]", "mean=[0.485, 0.456, 0.406]"])
    assert inference_normalisation(cfg) == training_normalisation(cfg) == IMAGENET


def test_resnet101_without_std_is_a_one_line_error_before_training(work):
    result = train(work, "cfg_name=nostd", "max_iter=2", "seg_backbone=resnet101", narrow=False)
    assert one_line(result) and "'std'" in result.stderr and "resnet101" in result.stderr
    assert not (work / "model" / "nostd").exists()
