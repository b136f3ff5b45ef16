"""Command-line plumbing shared by the scripts in tools/: config arguments, and one line instead
of a traceback for a user's mistake, a missing package or Ctrl-C.

This module imports only the standard library, so that a script can report a missing package
(``run_main``) before anything else is imported.
"""
import argparse
import os
import re
import shlex
import sys

from lib.errors import UserError

# Top-level modules of requirements.txt -> the package that provides them.
PACKAGES = {
    "torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "scipy": "scipy",
    "cv2": "opencv-python-headless", "yaml": "pyyaml", "PIL": "pillow", "tqdm": "tqdm",
    "pydensecrf": "pydensecrf2", "matplotlib": "matplotlib", "pycocotools": "pycocotools",
}
CONFIG_HELP = ("config overrides, typed by YAML rules (e.g. max_iter=100), anywhere among the "
               "options; every key and its default: below")
# An argument that is a config override: ``key=value`` (an option's ``--name=value`` is not).
OVERRIDE = re.compile(r"[A-Za-z_]\w*=")


def config_keys_epilog(width=88):
    """The end of ``--help``: every config key with its default, and where they are described
    (the paper's keys in the recipe, the keys this code adds in the README)."""
    import textwrap

    import yaml

    from lib.config import SCHEMA

    def shown(value):  # as an override types it; lists without spaces
        if isinstance(value, list):
            return "[" + ",".join(map(shown, value)) + "]"
        return yaml.safe_dump(value).strip().removesuffix("...").strip()

    pairs = " ".join(f"{key}={shown(default)}" for key, (_, default) in SCHEMA.items())
    return ("config keys: the paper's are listed in docs/recipe.md, section 10, and used in its\n"
            "sections 2-7; the others are explained in README.md, section Configuration; their\n"
            "types are in lib/config.py. Their defaults:\n"
            + textwrap.fill(pairs, width, initial_indent="  ", subsequent_indent="  ",
                            break_on_hyphens=False))


def add_dataset_name(parser, default="voc12_sgan", help_default="VOC 2012"):
    """``--dataset_name NAME``: the dataset whose classes, colours and image paths a tool uses
    (lib.dataset.description; a misspelt name is one line with the nearest one)."""
    parser.add_argument("--dataset_name", default=default,
                        help=f"voc12_sgan or voc12 (VOC 2012), coco14 (COCO 2014); default: "
                             f"{help_default}")


class ConfigParser(argparse.ArgumentParser):
    """An ArgumentParser whose ``key=value`` overrides (``overrides``) may stand anywhere among
    the options, as users write them: before, between or after them, also after an option that
    takes several values (``--thresholds 0.3 0.5 gt_path=DIR``)."""

    def parse_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        one_value = {option for action in self._actions if action.nargs is None
                     for option in action.option_strings}  # its value is no override
        given = [bool(OVERRIDE.match(arg)) and (i == 0 or args[i - 1] not in one_value)
                 for i, arg in enumerate(args)]
        overrides = [arg for arg, override in zip(args, given) if override]
        parsed = self.parse_intermixed_args(
            [arg for arg, override in zip(args, given) if not override], namespace)
        parsed.overrides = overrides + parsed.overrides  # a stray word: load_config's error
        return parsed


def config_parser(description, cfg_required=True):
    """A ConfigParser with ``--cfg_file CFG`` and ``key=value`` overrides, and the config keys
    in its ``--help``."""
    parser = ConfigParser(description=description, epilog=config_keys_epilog(),
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg_file", required=cfg_required, help="YAML config file")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=CONFIG_HELP)
    return parser


def config_from_args(args):
    """The validated Config of ``--cfg_file`` with the ``key=value`` overrides."""
    from lib.config import load_config

    return load_config(args.cfg_file, args.overrides)


def run_step(module, description, argv=None):
    """The whole of a pipeline script: parse ``--cfg_file CFG [key=value ...]`` and call
    ``run(cfg)`` of the lib module named ``module``, under :func:`run_main`. The config's
    ``command_line`` entry is the script and its arguments as given (for resume_command)."""
    def main(argv):
        import importlib

        step = importlib.import_module(module)
        args = config_parser(description).parse_args(argv)
        cfg = config_from_args(args)
        warn_unread(module.rsplit(".", 1)[-1], args.overrides, step.CONFIG_KEYS)
        cfg["command_line"] = [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
        step.run(cfg)

    run_main(main, argv)


def warn_unread(name, overrides, keys):
    """One warning line on stderr naming the keys of ``key=value`` overrides that ``name`` (a
    step or tool) does not read, i.e. are not among ``keys``: they change nothing there."""
    unread = unread_overrides(overrides, keys)
    if unread:
        print(f"warning: {name} does not read config key{'s' if len(unread) > 1 else ''} "
              f"{', '.join(unread)} (given on the command line): it changes nothing here",
              file=sys.stderr)


def unread_overrides(overrides, keys):
    """The keys of ``key=value`` overrides that are not among ``keys`` (a step's CONFIG_KEYS),
    in the order given."""
    given = [text.partition("=")[0].strip() for text in overrides]
    return [key for i, key in enumerate(given) if key not in keys and key not in given[:i]]


def generator_main(description, generate, kind, num_classes, argv=None):
    """The whole of a synthetic-data script (tools/make_synthetic_voc.py, ..._coco.py): the
    generator's options, ``generate(root, ...)`` with them, and one line saying what it wrote;
    a bad option (``generate``'s ValueError) is one line."""
    import time

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", required=True, help="output folder (the dataset_root)")
    parser.add_argument("--num_images", type=int, default=40)
    parser.add_argument("--min_size", type=int, default=64, help="smallest image side, pixels")
    parser.add_argument("--max_size", type=int, default=128, help="largest image side, pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--classes", default=None,
                        help=f"comma list of class ids in 1..{num_classes} (default all)")
    parser.add_argument("--sal_subdir", default="sal_snet")
    parser.add_argument("--seed_subdir", default="base_30_bg")
    args = parser.parse_args(argv)
    classes = None if args.classes is None else parse_classes(args.classes)
    start = time.perf_counter()
    try:
        names = generate(args.root, num_images=args.num_images, min_size=args.min_size,
                         max_size=args.max_size, seed=args.seed, classes=classes,
                         sal_subdir=args.sal_subdir, seed_subdir=args.seed_subdir)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {len(names)} synthetic {kind} images ({args.min_size}-{args.max_size} px, "
          f"seed {args.seed}) to {args.root} in {time.perf_counter() - start:.1f}s")
    return 0


def parse_classes(text):
    """``--classes "1,5,12"`` -> [1, 5, 12]; anything else is a one-line user error."""
    try:
        classes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--classes must be a comma-separated list of class ids, "
                        f"got {text!r}") from None
    if not classes:
        raise UserError("--classes must name at least one class id")
    return classes


def resume_command(command_line):
    """The command that resumes an interrupted training: ``command_line`` (a script and its
    arguments, the config's ``command_line``) with ``resume=true`` instead of any ``resume=``
    or ``overwrite=``, run by this Python (under torchrun: by torchrun with its options as
    before). Without a command line (training called from Python): what to change."""
    if not command_line:
        return "the same configuration with resume=true"
    script, *args = command_line
    args = [arg for arg in args if not arg.startswith(("resume=", "overwrite="))]
    line = shlex.join([script, *args, "resume=true"])
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return f"torchrun (its options as before) {line}"
    return f"{shlex.quote(sys.executable)} {line}"


def error_line(exc):
    """One line for an error. A DataLoader worker's error arrives as its whole traceback;
    its last line, without the exception's type, is the message."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    last = lines[-1]
    prefix = f"{type(exc).__name__}: "
    return last[len(prefix):] if len(lines) > 1 and last.startswith(prefix) else last


def missing_package_line(exc):
    """The one line for a ModuleNotFoundError of a required package, or None for any other
    module (a bug, not a missing installation)."""
    top = (exc.name or "").split(".")[0]
    if top not in PACKAGES:
        return None
    return (f"the Python package '{PACKAGES[top]}' is not installed (import of '{exc.name}' "
            f"failed): pip install -r requirements.txt")


def run_main(main, argv=None):
    """Call ``main(argv)``; turn user errors and missing packages into one line on stderr
    (exit 2) and Ctrl-C into its message ("interrupted", or where and how to resume: an
    lib.errors.Interrupted) and exit 130 (143 after SIGTERM)."""
    try:
        code = main(argv)
    except (UserError, FileNotFoundError) as exc:
        print(f"error: {error_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except ModuleNotFoundError as exc:
        line = missing_package_line(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as exc:
        print(str(exc) or "interrupted", file=sys.stderr)
        sys.exit(getattr(exc, "status", 130))
    sys.exit(code or 0)
