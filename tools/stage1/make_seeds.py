"""Make initial seeds: ``python tools/stage1/make_seeds.py --cfg_file CFG [key=value ...]``."""
from lib.stage1 import make_seeds
from lib.utils.cli import config_from_args, config_parser, run_main


def main(argv=None):
    args = config_parser(__doc__).parse_args(argv)
    make_seeds.run(config_from_args(args))


if __name__ == "__main__":
    run_main(main)
