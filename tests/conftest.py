"""Shared fixtures: golden data paths and a small synthetic VOC tree made by our generator."""
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DATA = os.path.join(REPO, "tests", "data")
GOLDEN_VOC = os.path.join(DATA, "golden_voc")

# Under pytest-xdist (make test: one test process per core) each process, and every script it
# starts, computes on its share of the cores instead of all of them.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_threads))


@pytest.fixture(scope="session")
def synth_voc(tmp_path_factory):
    """A 12-image synthetic VOC tree (33..97 px), generated once per test session."""
    from lib.tooling.synthetic import generate_dataset
    root = tmp_path_factory.mktemp("synth_voc")
    generate_dataset(str(root), num_images=12, min_size=33, max_size=97, seed=3)
    return str(root)


def listed_run_files(run_dir):
    """The sorted file names of a training run's folder, less TensorBoard's event files (their
    names hold the host and time; tests that need them read them)."""
    from lib.training.metrics import EVENTS_PREFIX
    return sorted(n for n in os.listdir(run_dir) if not n.startswith(EVENTS_PREFIX))
