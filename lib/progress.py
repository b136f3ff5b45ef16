"""Progress bars, on a terminal only: redirected to a file, a bar would write every update
(megabytes of carriage returns for a real run); the log lines say the same in lines."""
from tqdm import tqdm


def progress_bar(iterable=None, shown=True, **kwargs):
    """A tqdm bar over ``iterable`` (or updated by hand), drawn only where stderr is a
    terminal and ``shown`` (e.g. on the main process of a job)."""
    return tqdm(iterable, disable=None if shown else True, dynamic_ncols=True, **kwargs)
