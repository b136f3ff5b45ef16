"""Train SGAN: ``python tools/stage2/train_sgan.py --cfg_file CFG [key=value ...]``."""
from lib.stage2 import train_sgan
from lib.utils.cli import config_from_args, config_parser, run_main


def main(argv=None):
    args = config_parser(__doc__).parse_args(argv)
    train_sgan.run(config_from_args(args))


if __name__ == "__main__":
    run_main(main)
