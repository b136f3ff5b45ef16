"""Shared command-line plumbing: config arguments and one-line errors instead of tracebacks."""
import argparse
import sys

from lib.config import load_config
from lib.errors import UserError


def config_parser(description):
    """An ArgumentParser with ``--cfg_file CFG`` and trailing ``key=value`` overrides."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg_file", required=True, help="YAML config file")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, typed by YAML rules (e.g. max_iter=100)")
    return parser


def config_from_args(args):
    return load_config(args.cfg_file, args.overrides)


def error_line(exc):
    """One line for an error. A DataLoader worker's error arrives as its whole traceback;
    its last line, without the exception's type, is the message."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    last = lines[-1]
    prefix = f"{type(exc).__name__}: "
    return last[len(prefix):] if len(lines) > 1 and last.startswith(prefix) else last


def run_main(main, argv=None):
    """Call ``main(argv)``; turn user errors into one line on stderr and Ctrl-C into exit 130."""
    try:
        code = main(argv)
    except (UserError, FileNotFoundError) as exc:
        print(f"error: {error_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
