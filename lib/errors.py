"""The one exception type a user sees as a single line (bad file, bad value, bad key), and
the helpers that keep such lines short."""


class UserError(Exception):
    """A problem the user can fix; the command-line tools print it as one line."""


def first_few(items, count=5):
    """``a, b, c, d, e, ...``: the first ``count`` items, for one-line messages."""
    items = [str(item) for item in items]
    return ", ".join(items[:count]) + (", ..." if len(items) > count else "")


def one_line(text):
    """``text`` with its whitespace (newlines included) collapsed to single spaces."""
    return " ".join(str(text).split())
