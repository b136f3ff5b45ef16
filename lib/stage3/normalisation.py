"""Stage 3's input normalisation (SPEC 11.1, 11.5, 11.6).

Without ``std`` the input is the caffe layout (BGR, 0..255): training subtracts ``mean`` as
Caffe holds it, the test the published test_ms.py's (104, 117, 123). With ``std`` it is
torchvision's (RGB / 255, minus ``mean``, / ``std``) at training and at test. A ``mean`` on
the other scale would train, silently, on inputs far from zero; and resnet101's initial
weights (torchvision's ImageNet ResNet) were made for torchvision's input, so they need
``std``. Checked here, not in lib.config.load_config, where stages 1 and 2 share the keys.
"""
from lib.config import ConfigError
from lib.dataset.voc12_seg import caffe_mean
from lib.stage3.predict import PUBLISHED_TEST_INPUT


def check_input_scale(cfg):
    """ConfigError naming the key if ``mean`` is not on the scale ``std`` implies, or if
    resnet101's initial weights would not get their ImageNet input."""
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
    """(mean, std) of the training loop's device-side normalisation (lib.image)."""
    check_input_scale(cfg)
    if cfg.std is None:
        return caffe_mean(cfg.mean), None  # Caffe subtracts its float32 mean
    return tuple(cfg.mean), tuple(cfg.std)


def inference_normalisation(cfg):
    """(mean, std) of the multi-scale test's input (lib.stage3.predict)."""
    check_input_scale(cfg)
    if cfg.std is None:
        return PUBLISHED_TEST_INPUT
    return tuple(cfg.mean), tuple(cfg.std)
