"""Train the classifier: ``python tools/stage1/train_cls.py --cfg_file CFG [key=value ...]``."""
from lib.stage1 import train_cls
from lib.utils.cli import config_from_args, config_parser, run_main


def main(argv=None):
    args = config_parser(__doc__).parse_args(argv)
    train_cls.run(config_from_args(args))


if __name__ == "__main__":
    run_main(main)
