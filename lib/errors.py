"""The exception types a user sees as a single line (bad file, bad value, bad key; an
interruption), and the helpers that keep such lines short."""


class UserError(Exception):
    """A problem the user can fix; the command-line tools print it as one line."""


class ConfigError(UserError):
    """A configuration file or override is invalid; the message names the key."""


def first_few(items, count=5):
    """``a, b, c, d, e, ...``: the first ``count`` items, for one-line messages."""
    items = [str(item) for item in items]
    return ", ".join(items[:count]) + (", ..." if len(items) > count else "")


def one_line(text):
    """``text`` with its whitespace (newlines included) collapsed to single spaces."""
    return " ".join(str(text).split())


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM ended the work; the message says where it stopped and how to go on.
    The command-line tools print the message and exit with ``status`` (128 + the signal's
    number, as a shell reports a process a signal ended)."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.status = 128 + signum
