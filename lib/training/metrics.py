"""A training run's numbers over time: ``metrics.csv`` and, where the ``tensorboard`` package is
installed, TensorBoard event files, both in the run's folder (``<save_model_path>/<cfg_name>``).

One row per logged iteration (every ``display_step``, the last one, and every validation):
``iteration``, ``lr``, each loss term by name (the global batch's, summed over processes),
``samples_per_s`` (global samples per second since the previous row), ``peak_gpu_mem_mib``
(this process's peak since the previous row, on CUDA only) and, for a task that validates,
``val_mIoU`` (a fraction 0..1, as in the evaluator's JSON); a cell a row has no value for
stays empty. Only the main process writes. A resumed run keeps the rows up to the iteration it
resumes from (and the columns of the earlier part, such as val_mIoU of a run that no longer
validates) and appends after them, so an iteration never appears twice even when the run was
stopped between two checkpoints; a row cut short by a crash is dropped then.
``tensorboard --logdir <save_model_path>`` shows every run.
"""
import contextlib
import csv
import io
import math
import os

import torch

from lib.files import atomic_write_bytes

METRICS_NAME = "metrics.csv"
EVENTS_PREFIX = "events.out.tfevents."  # TensorBoard's event files
EVENTS_HINT = "pip install tensorboard for event files"
VAL_COLUMN = "val_mIoU"  # the column of a validation score


def metric_files(folder):
    """The names of the metrics files in a run's folder: metrics.csv and event files."""
    if not os.path.isdir(folder):
        return []
    return sorted(name for name in os.listdir(folder)
                  if name == METRICS_NAME or name.startswith(EVENTS_PREFIX))


def metric_columns(term_names, validates=False):
    """The header of a task's metrics.csv."""
    return ["iteration", "lr", *term_names, "samples_per_s", "peak_gpu_mem_mib",
            *([VAL_COLUMN] if validates else [])]


def _cell(value):
    """A number as text that reads back to the same float (empty for None)."""
    return "" if value is None else repr(value)


def read_metrics(path):
    """The rows of a metrics.csv as dicts of floats (empty cells left out), in file order."""
    with open(path, newline="") as f:
        return [{key: float(value) for key, value in row.items() if value not in ("", None)}
                for row in csv.DictReader(f)]


def _earlier_part(path, start_iteration):
    """(header, rows) of the metrics.csv of an earlier part of this run: its rows up to
    ``start_iteration`` as dicts of text cells, those with a whole iteration and every field
    (not a line a crash cut short); ([], []) without a file."""
    if not os.path.isfile(path):
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    return header, [row for row in rows if _whole_row(row, start_iteration)]


def _whole_row(row, start_iteration):
    if None in row or None in row.values():  # too many fields, or too few
        return False
    try:
        iteration = float(row["iteration"])
    except (KeyError, ValueError):
        return False
    return math.isfinite(iteration) and iteration == int(iteration) and \
        0 < iteration <= start_iteration


def _event_writer(folder, start_iteration, logger):
    """A TensorBoard SummaryWriter in ``folder`` (events after ``start_iteration`` purged), or
    None with one log line when the package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises it when the tensorboard package is absent
        logger.info("tensorboard is not installed: metrics in %s only (%s)", METRICS_NAME,
                    EVENTS_HINT)
        return None
    return SummaryWriter(folder, purge_step=start_iteration + 1)  # drops later steps on resume


class RunMetrics:
    """metrics.csv (and TensorBoard events) of one run; a no-op on processes other than the
    main one. ``start_iteration``: 0 for a fresh run, the resumed iteration otherwise."""

    def __init__(self, folder, columns, start_iteration, is_main, logger):
        self.columns = list(columns)
        self.path = os.path.join(folder, METRICS_NAME)
        self.enabled = is_main
        self.events = None
        if not self.enabled:
            return
        header, kept = _earlier_part(self.path, start_iteration)
        self.columns += [column for column in header if column not in self.columns]
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(
            [self.columns, *([row.get(column) or "" for column in self.columns]
                             for row in kept)])
        atomic_write_bytes(self.path, text.getvalue().encode())
        self.events = _event_writer(folder, start_iteration, logger)

    def write(self, iteration, values):
        """Append the row of ``iteration``: ``values`` maps column names to numbers (None or
        absent = empty); the same values go to TensorBoard under their column names."""
        if not self.enabled:
            return
        unknown = set(values) - set(self.columns)
        if unknown:
            raise ValueError(f"not a column of {self.path}: {sorted(unknown)}")
        row = [iteration, *(values.get(column) for column in self.columns[1:])]
        with open(self.path, "a", newline="") as f:
            csv.writer(f, lineterminator="\n").writerow([_cell(v) for v in row])
        if self.events is not None:
            for column, value in values.items():
                if value is not None:
                    self.events.add_scalar(column, value, iteration)
            self.events.flush()

    def close(self):
        if self.events is not None:
            self.events.close()
            self.events = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class Throughput:
    """Global samples per second of training and this process's peak GPU memory since the last
    reading."""

    def __init__(self, device, clock):
        self.device, self.clock = device, clock
        self.since, self.iterations = clock(), 0
        self._reset_peak()

    def _reset_peak(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def count(self):
        """One more iteration done."""
        self.iterations += 1

    @contextlib.contextmanager
    def paused(self):
        """Time spent in the block (validation, a checkpoint) is not training time: the reading
        under way does not count it (its iterations still count, and the peak memory)."""
        started = self.clock()
        try:
            yield
        finally:
            self.since += self.clock() - started

    def reading(self, batch_size):
        """{"samples_per_s", "peak_gpu_mem_mib"} since the previous reading, then start anew."""
        now = self.clock()
        elapsed = now - self.since
        rate = self.iterations * batch_size / elapsed if elapsed > 0 and self.iterations else None
        peak = None
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        self.since, self.iterations = now, 0
        self._reset_peak()
        return {"samples_per_s": rate, "peak_gpu_mem_mib": peak}
