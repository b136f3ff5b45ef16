"""A training run's numbers over time: ``metrics.csv`` and, where the ``tensorboard`` package is
installed, TensorBoard event files, both in the run's folder (``<save_model_path>/<cfg_name>``).

One row per logged iteration (every ``display_step``, the last one, and every validation):
``iteration``, ``lr``, each loss term by name (the global batch's, summed over processes),
``samples_per_s`` (global samples per second since the previous row), ``peak_gpu_mem_mib``
(this process's peak since the previous row, on CUDA only) and, for a task that validates,
``val_mIoU``; a cell a row has no value for stays empty. Only the main process writes. A
resumed run keeps the rows up to the iteration it resumes from and appends after them, so an
iteration never appears twice even when the run was stopped between two checkpoints.
``tensorboard --logdir <save_model_path>`` shows every run.
"""
import csv
import io
import os

import torch

from lib.files import atomic_write_bytes

METRICS_NAME = "metrics.csv"
EVENTS_PREFIX = "events.out.tfevents."  # TensorBoard's event files
EVENTS_HINT = "pip install tensorboard for event files"


def metric_files(folder):
    """The names of the metrics files in a run's folder: metrics.csv and event files."""
    if not os.path.isdir(folder):
        return []
    return sorted(name for name in os.listdir(folder)
                  if name == METRICS_NAME or name.startswith(EVENTS_PREFIX))


def metric_columns(term_names, validates=False):
    """The header of a task's metrics.csv."""
    return ["iteration", "lr", *term_names, "samples_per_s", "peak_gpu_mem_mib",
            *(["val_mIoU"] if validates else [])]


def _cell(value):
    """A number as text that reads back to the same float (empty for None)."""
    return "" if value is None else repr(value)


def read_metrics(path):
    """The rows of a metrics.csv as dicts of floats (empty cells left out), in file order."""
    with open(path, newline="") as f:
        return [{key: float(value) for key, value in row.items() if value not in ("", None)}
                for row in csv.DictReader(f)]


def _kept_rows(path, columns, start_iteration):
    """The rows of an earlier part of this run up to ``start_iteration``, as text cells of
    ``columns`` (a column the old file lacks stays empty; one it has beyond them is dropped)."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    kept = []
    for row in rows:
        try:
            if float(row.get("iteration") or "nan") > start_iteration:
                continue
        except ValueError:
            continue
        kept.append([row.get(column) or "" for column in columns])
    return kept


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
        kept = _kept_rows(self.path, self.columns, start_iteration)
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows([self.columns, *kept])
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
    """Global samples per second and this process's peak GPU memory since the last reading."""

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

    def restart(self):
        """Start the next reading now (time spent since is not counted)."""
        self.since = self.clock()
        self._reset_peak()

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
