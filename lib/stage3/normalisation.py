"""Stage 3's input normalisation, fixed by the backbone's initial weights (SPEC 11.1, 11.5, 11.6).

Without ``std`` the input is the caffe layout (BGR, 0..255): training subtracts ``mean`` as
Caffe holds it, the test the published test_ms.py's (104, 117, 123). With ``std`` it is
torchvision's (RGB / 255, minus ``mean``, / ``std``) at training and at test. Initial weights
(``seg_pretrain``) were made for one of them: vgg16's for the caffe layout (``std`` null),
resnet101's for ImageNet's input (``std`` given, ``mean`` on the 0..1 scale); any other
combination would train, silently, on an input scale the weights were not made for. A network
trained from scratch (no ``seg_pretrain``, as the CPU demo) may use either.

This is checked here, not in lib.config.load_config: ``std`` is shared with stages 1 and 2,
where a vgg16 with ``std`` is valid (the demo trains one from scratch), and ``seg_backbone``
defaults to vgg16 in their configurations.
"""
from lib.config import ConfigError
from lib.dataset.voc12_seg import caffe_mean
from lib.stage3.predict import PUBLISHED_TEST_INPUT


def check_input_scale(cfg):
    """ConfigError naming the key if ``mean`` / ``std`` do not fit the initial weights of
    ``seg_backbone`` (none without ``seg_pretrain``)."""
    if not cfg.seg_pretrain:
        return
    if cfg.seg_backbone == "vgg16" and cfg.std is not None:
        raise ConfigError(f"config key 'std' must be null for seg_backbone vgg16 (its weights "
                          f"take BGR 0..255 minus mean), got {cfg.std!r}")
    if cfg.seg_backbone == "resnet101":
        if cfg.std is None:
            raise ConfigError("config key 'std' must be given for seg_backbone resnet101 (its "
                              "weights take RGB / 255 minus mean, / std: ImageNet's "
                              "[0.229, 0.224, 0.225])")
        if not all(0 <= m <= 1 for m in cfg.mean):
            raise ConfigError(f"config key 'mean' must be on the RGB / 255 scale (0..1) for "
                              f"seg_backbone resnet101 (ImageNet's [0.485, 0.456, 0.406]), "
                              f"got {cfg.mean!r}")


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
