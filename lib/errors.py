"""The one exception type a user sees as a single line (bad file, bad value, bad key)."""


class UserError(Exception):
    """A problem the user can fix; the command-line tools print it as one line."""
