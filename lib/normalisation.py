"""Network input normalisation, every stage's, defined once (recipe 2 step 3, 11.2, 11.5, 11.6).

Two layouts, chosen by ``std``:
- caffe (``std`` None): BGR on the 0..255 scale minus a BGR ``mean``;
- torchvision (``std`` given): RGB / 255, minus ``mean``, divided by ``std``.

Each published computation keeps its own arithmetic, so each has its own function here:
- training items of every stage (:func:`normalise_image`, NumPy) and the same on the device
  (:func:`normalise_on_device`, :func:`normalise_tensor`): uint8 BGR images, the mean
  subtracted in float64 (caffe) or each step rounded to float32 (torchvision), as published;
- stage 3's test (test_ms.py): the float32 zoom of the RGB image, RGB -> BGR minus the
  published test mean (104, 117, 123) in float32, or the torchvision steps in float32
  (:func:`normalise_test_input` in NumPy, :func:`normalise_test_batch` on the device).
Which (mean, std) stage 3 feeds its backbone is chosen here too (:func:`training_normalisation`,
:func:`inference_normalisation`, checked by :func:`check_input_scale`).
"""
import numpy as np
import torch

from lib.config import ConfigError
from lib.voc import BGR_MEAN

TEST_MEAN_BGR = (104.0, 117.0, 123.0)  # test_ms.py's mean (training uses BGR_MEAN)
PUBLISHED_TEST_INPUT = (TEST_MEAN_BGR, None)  # (mean, std): test_ms.py's BGR minus its mean


def normalise_image(image_bgr, mean=BGR_MEAN, std=None):
    """uint8 BGR HWC -> float32 CHW: minus the BGR mean, or (std given) RGB/255, minus mean, / std.

    Leading axes are kept: a (batch, H, W, 3) stack gives (batch, 3, H, W). The arithmetic is
    the published one (recipe 2 step 3): the mean subtraction in float64, then float32; with
    ``std``, in place on the float32 image, so that each step's result (/ 255, - mean, / std)
    is rounded to float32 (NumPy computes a float64 mean or std step in float64).
    """
    if std is None:
        image = image_bgr.astype(np.float64) - np.asarray(mean)
    else:
        image = image_bgr[..., ::-1].astype(np.float32)
        image /= 255.0
        image -= np.asarray(mean, dtype=np.float64)
        image /= np.asarray(std, dtype=np.float64)
    return np.ascontiguousarray(np.moveaxis(image, -1, -3), dtype=np.float32)


def normalise_on_device(images, mean=BGR_MEAN, std=None, channels_last=False):
    """:func:`normalise_image` of a uint8 BGR (batch, S, S, 3) tensor, on its own device.

    Returns float32 (batch, 3, S, S) with exactly normalise_image's values, so a loader can
    ship uint8 images; laid out channels-last if asked. On the CPU, NumPy does it (faster
    there than torch in float64).
    """
    if images.device.type == "cpu":
        out = torch.from_numpy(normalise_image(images.numpy(), mean, std))
    else:
        out = normalise_tensor(images, mean, std)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def normalise_tensor(images, mean=BGR_MEAN, std=None):
    """:func:`normalise_on_device` in torch, with normalise_image's arithmetic: each step in
    float64, rounded to float32 where the published code rounds."""
    mean = torch.tensor(mean, dtype=torch.float64, device=images.device)
    if std is None:
        image = images.to(torch.float64) - mean
    else:
        std = torch.tensor(std, dtype=torch.float64, device=images.device)
        image = _rounded_to_float32(images.flip(-1).to(torch.float64) / 255.0)
        image = _rounded_to_float32(image - mean)
        image = image / std
    return image.permute(0, 3, 1, 2).to(torch.float32).contiguous()


def _rounded_to_float32(tensor):
    """A float64 tensor's values rounded to float32 (kept in float64 for the next step)."""
    return tensor.to(torch.float32).to(torch.float64)


def caffe_mean(mean):
    """The mean as Caffe holds it (a protobuf float): each value rounded to float32, so that
    float64 x - mean rounded to float32 is Caffe's float32 subtraction exactly."""
    return tuple(float(np.float32(m)) for m in mean)


def normalise_test_input(zoomed_rgb, normalisation=PUBLISHED_TEST_INPUT):
    """float32 CHW network input of a float32 RGB HWC image zoomed to the test side, with
    ``normalisation`` = (mean, std): RGB -> BGR minus the mean (std None, the published
    test), or RGB / 255, minus the mean, / std; in float32."""
    mean, std = (None if v is None else np.asarray(v, dtype=np.float32) for v in normalisation)
    if std is None:
        normalised = zoomed_rgb[:, :, ::-1] - mean
    else:
        normalised = (zoomed_rgb / np.float32(255) - mean) / std
    return np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32)


def normalise_test_batch(zoomed_rgb, normalisation=PUBLISHED_TEST_INPUT):
    """:func:`normalise_test_input` of a float32 RGB N x 3 x S x S tensor, on its device."""
    mean, std = (None if v is None else
                 torch.tensor(v, dtype=torch.float32, device=zoomed_rgb.device).view(1, 3, 1, 1)
                 for v in normalisation)
    return zoomed_rgb.flip(1) - mean if std is None else (zoomed_rgb / 255 - mean) / std


def check_input_scale(cfg):
    """Stage 3: ConfigError naming the key if ``mean`` is not on the scale ``std`` implies, or
    if resnet101's initial weights would not get their ImageNet input.

    Without ``std`` the input is the caffe layout (BGR, 0..255): training subtracts ``mean``
    as Caffe holds it, the test the published test_ms.py's (104, 117, 123). With ``std`` it is
    torchvision's at training and at test. A ``mean`` on the other scale would train,
    silently, on inputs far from zero; and resnet101's initial weights (torchvision's ImageNet
    ResNet) were made for torchvision's input, so they need ``std``. Checked here, not in
    lib.config.load_config, where stages 1 and 2 share the keys."""
    on_unit_scale = all(0 <= m <= 1 for m in cfg.mean)
    if cfg.std is not None and not on_unit_scale:
        raise ConfigError(f"config key 'mean' must be on the RGB / 255 scale (0..1) with std "
                          f"given (ImageNet's [0.485, 0.456, 0.406]), got {cfg.mean!r}")
    if cfg.std is None and on_unit_scale:
        raise ConfigError(f"config key 'mean' must be on the 0..255 scale without std (the "
                          f"caffe layout's [104.008, 116.669, 122.675]), got {cfg.mean!r}")
    if cfg.seg_backbone == "resnet101" and cfg.seg_pretrain and cfg.std is None:
        raise ConfigError("config key 'std' must be given for seg_backbone resnet101 (its "
                          "initial weights take RGB / 255 minus mean, / std: ImageNet's "
                          "[0.229, 0.224, 0.225])")


def training_normalisation(cfg):
    """(mean, std) of stage 3's device-side normalisation of its training images."""
    check_input_scale(cfg)
    if cfg.std is None:
        return caffe_mean(cfg.mean), None  # Caffe subtracts its float32 mean
    return tuple(cfg.mean), tuple(cfg.std)


def inference_normalisation(cfg):
    """(mean, std) of stage 3's multi-scale test input (lib.stage3.predict)."""
    check_input_scale(cfg)
    if cfg.std is None:
        return PUBLISHED_TEST_INPUT
    return tuple(cfg.mean), tuple(cfg.std)
