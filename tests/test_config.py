import os

import pytest
import yaml

from conftest import REPO
from lib.config import SCHEMA, ConfigError, load_config, parse_override, save_config

PAPER = "config/sgan_vgg16_321x321.yml"
PAPER_TABLE = {
    "cfg_name": "sgan_vgg16_321x321_snet", "dataset_name": "voc12_sgan",
    "gt_path": "SegmentationClassAug/", "sal_subdir": "sal_snet", "sal_thresh": 0.06,
    "seed_subdir": "base_30_bg", "sdnet_path": "sal_snet", "cue_file": "im_tags.pkl",
    "batch_size": 15, "num_worker": 8, "resize": 321, "use_sal": True,
    "mean": [104.008, 116.669, 122.675], "std": None, "backbone": "vgg16",
    "pretrain": "vgg_init.pth", "max_iter": 8000, "step_size": 2000, "display_step": 50,
    "lr": 0.001, "power": 0.9, "weight_decay": 0.0005, "seed_loss_ratio": 0.15,
    "save_model_path": "model/", "test_cfg": "_seedcam_0.25", "new_size": 321,
    "res_path": "result", "cam_thresh": 0.25, "ignore_conflict": False,
    "combine_seedseg": True, "num_classes": 22,
}


def test_paper_file_holds_exactly_the_spec_keys():
    with open(PAPER) as f:
        raw = yaml.safe_load(f)
    assert set(raw) == set(PAPER_TABLE) | {"dataset_root"}
    for key, value in PAPER_TABLE.items():
        assert raw[key] == value, key


def test_defaults_are_the_paper_values():
    cfg = load_config(None)
    for key, value in PAPER_TABLE.items():
        assert cfg[key] == value, key


def test_background_threshold_defaults_to_the_published_constant():
    assert load_config(None).bg_thresh == 0.06 == load_config(PAPER).bg_thresh


def test_overrides_are_typed_by_yaml_rules():
    cfg = load_config(PAPER, ["lr=0.01", "max_iter=20", "use_sal=false", "std=[0.2, 0.2, 0.2]",
                              "pretrain=", "cfg_name=demo"])
    assert cfg.lr == 0.01 and isinstance(cfg.lr, float)
    assert cfg.max_iter == 20 and cfg.use_sal is False
    assert cfg.std == [0.2, 0.2, 0.2] and cfg.pretrain is None and cfg.cfg_name == "demo"
    assert cfg.lr == load_config(PAPER, {"lr": 0.01}).lr
    assert load_config(PAPER, ["lr=1"]).lr == 1.0  # an int where a float is expected is fine
    assert load_config(PAPER, ["lr=1e-3"]).lr == 0.001  # YAML 1.1 reads this as a string


@pytest.mark.parametrize("override, key", [
    ("max_iters=3", "max_iters"), ("max_iter=1.5", "max_iter"), ("use_sal=maybe", "use_sal"),
    ("mean=[1, 2]", "mean"), ("cam_thresh=1.2", "cam_thresh"), ("batch_size=0", "batch_size"),
    ("num_classes=20", "num_classes"), ("backbone=resnet", "backbone"), ("lr=fast", "lr"),
    ("bg_thresh=1.5", "bg_thresh"),
])
def test_bad_keys_and_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(PAPER, [override])


def test_unknown_key_in_file_is_an_error(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("lr: 0.1\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown config key 'learning_rate'"):
        load_config(str(path))


def test_malformed_override_and_missing_file():
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("lr")
    with pytest.raises(ConfigError, match="not found"):
        load_config("no/such.yml")


def test_saved_config_loads_back_equal(tmp_path):
    cfg = load_config(PAPER, ["lr=0.02", "cfg_name=x"])
    save_config(cfg, str(tmp_path / "saved.yml"))
    again = load_config(str(tmp_path / "saved.yml"))
    assert {k: again[k] for k in SCHEMA} == {k: cfg[k] for k in SCHEMA}


def test_schema_declares_every_key_once():
    """A repeated key in the SCHEMA literal would silently replace the first declaration."""
    import ast
    import collections
    import inspect

    import lib.config

    tree = ast.parse(inspect.getsource(lib.config))
    schema = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                  and any(getattr(t, "id", None) == "SCHEMA" for t in node.targets))
    counts = collections.Counter(key.value for key in schema.keys)
    assert [key for key, n in counts.items() if n > 1] == [] and len(counts) == len(SCHEMA)


def test_after_training_keys_are_known_keys():
    from lib.config import AFTER_TRAINING_KEYS
    assert AFTER_TRAINING_KEYS < set(SCHEMA)
    assert not AFTER_TRAINING_KEYS & {"lr", "max_iter", "batch_size", "resize", "random_seed"}


def test_run_time_keys_are_known_keys_that_leave_the_recipe_alone():
    from lib.config import AFTER_TRAINING_KEYS, RUN_TIME_KEYS
    assert RUN_TIME_KEYS < set(SCHEMA) and not RUN_TIME_KEYS & AFTER_TRAINING_KEYS
    assert not RUN_TIME_KEYS & {"lr", "max_iter", "batch_size", "power", "random_seed", "amp",
                                "dataset_root", "width_mult"}


def test_a_path_may_follow_dataset_root_in_the_file_and_on_the_command_line(tmp_path):
    demo = os.path.join(REPO, "config", "demo_seg.yml")
    cfg = load_config(demo, ["dataset_root=/data/other_tree"])
    assert cfg.seed_dir == "/data/other_tree/ini_seed/base_30_bg"
    assert load_config(demo).seed_dir == "data/demo_voc/ini_seed/base_30_bg"
    cfg = load_config(None, ["dataset_root=voc", "res_path={dataset_root}/results"])
    assert cfg.res_path == "voc/results" and cfg.dataset_root == "voc"
