"""lib/cli.py's ConfigParser: ``key=value`` overrides stand anywhere among a script's options."""
import argparse

from lib.cli import config_parser


def parser():
    """A config parser with the kinds of options the scripts have."""
    result = config_parser("test", cfg_required=False)
    result.add_argument("--res_path")
    result.add_argument("--thresholds", nargs="+")
    result.add_argument("--seg_set", action="append", default=[])
    result.add_argument("--strict", action=argparse.BooleanOptionalAction, default=True)
    return result


def test_overrides_stand_before_between_and_after_the_options_in_their_order():
    args = parser().parse_args(["a=1", "--cfg_file", "c.yml", "b=2", "--res_path", "R", "c=3",
                                "--no-strict", "a=4"])
    assert args.overrides == ["a=1", "b=2", "c=3", "a=4"]
    assert (args.cfg_file, args.res_path, args.strict) == ("c.yml", "R", False)


def test_an_override_after_a_list_option_is_no_value_of_it():
    args = parser().parse_args(["--thresholds", "0.3", "0.5", "gt_path=G", "--res_path", "R",
                                "lr=1"])
    assert args.thresholds == ["0.3", "0.5"] and args.overrides == ["gt_path=G", "lr=1"]


def test_an_option_value_with_an_equals_sign_stays_the_options():
    args = parser().parse_args(["--res_path", "a=b", "--seg_set", "max_iter=4",
                                "--cfg_file=x=y.yml", "k=v"])
    assert (args.res_path, args.seg_set, args.cfg_file) == ("a=b", ["max_iter=4"], "x=y.yml")
    assert args.overrides == ["k=v"]


def test_a_word_that_is_no_override_is_left_for_load_config():
    args = parser().parse_args(["a=1", "--res_path", "R", "max_iter"])
    assert args.overrides == ["a=1", "max_iter"]
