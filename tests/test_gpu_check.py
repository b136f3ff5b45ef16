"""tools/gpu_check.py on a CPU: its arguments, the one-line refusal without a GPU, the commands
it would run, the reports it writes from its steps' outputs (steps faked), and the stop of a
step past its time with the processes it started."""
import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO
from lib.errors import UserError
from lib.tooling import gpu_check
from lib.tooling.bench.common import STAGES


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("gpu_check_tool",
                                                  os.path.join(REPO, "tools", "gpu_check.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_prints_the_commands_and_needs_no_gpu(tool, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "report"
    assert tool.main(["--dry_run", "--out", str(out), "--budget_s", "300"]) == 0
    lines = capsys.readouterr().out.splitlines()
    python = sys.executable
    assert lines[0] == (f"tests (at most 120 s): {python} -m pytest -q -m cuda "
                        f"tests/test_cuda.py --junitxml {out}/cuda_tests.xml")
    assert lines[1] == (f"bench (what is left of 300 s): {python} tools/bench.py --device cuda "
                        f"--stages train,infer,seg_crf,seg_infer,seg_train")
    assert not out.exists()
    assert set(gpu_check.BENCH_STAGES) <= set(STAGES)
    assert os.path.isfile(os.path.join(REPO, gpu_check.CUDA_TESTS))


def test_without_cuda_it_stops_with_one_line(tool, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU here") as err:
        tool.main(["--out", str(tmp_path / "report")])
    assert "\n" not in str(err.value) and not (tmp_path / "report").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_the_script_without_cuda_exits_2_with_one_line(tmp_path):
    run = subprocess.run([sys.executable, "tools/gpu_check.py", "--out", str(tmp_path / "r")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith("error: no CUDA GPU here") and run.stderr.count("\n") == 1


@pytest.mark.parametrize("budget", ["0", "-5"])
def test_a_budget_must_be_positive(tool, budget):
    with pytest.raises(UserError, match="--budget_s must be > 0"):
        tool.main(["--dry_run", "--budget_s", budget])


@pytest.mark.parametrize("argv", [["--budget_s", "soon"], ["--device", "cuda"]])
def test_bad_arguments_are_usage_errors(tool, argv, capsys):
    with pytest.raises(SystemExit) as err:
        tool.main(argv)
    assert err.value.code == 2 and "usage:" in capsys.readouterr().err


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0"
failures="1" skipped="1" tests="3"><testcase classname="tests.test_cuda" name="test_a"/>
<testcase classname="tests.test_cuda" name="test_b"><failure message="boom"/></testcase>
<testcase classname="tests.test_cuda" name="test_c"><skipped message="needs 2 GPUs"/></testcase>
</testsuite></testsuites>"""
DEVICE = {"gpu": "NVIDIA H200", "gpus": 1, "torch": "2.x", "cuda": "13.0", "cudnn": 91000}


class FakeSteps:
    """Stands for run_step: writes what each real step would and records its time limit."""

    def __init__(self, bench_output, tests_seconds=0.0):
        self.bench_output, self.tests_seconds = bench_output, tests_seconds
        self.timeouts = {}

    def __call__(self, step, timeout_s, out):
        self.timeouts[step.name] = timeout_s
        if step.name == "tests":
            time.sleep(self.tests_seconds)
            with open(step.command[-1], "w") as junit:
                junit.write(JUNIT)
            returncode = 1
        else:
            with open(os.path.join(out, "bench.log"), "w") as log:
                log.write(self.bench_output)
            returncode = 0
        return gpu_check.StepResult(step.name, " ".join(step.command), timeout_s, 1.0,
                                    returncode, False)


def test_the_reports_sum_up_the_steps(tmp_path):
    results = {"seg_crf": {"speedup": 7.5}}
    steps = FakeSteps("\nstage 3 batch CRF\n| method | ms |\n" + json.dumps(results) + "\n")
    report = gpu_check.run_check(str(tmp_path), 100, run=steps, device=lambda: DEVICE)
    assert steps.timeouts["tests"] == 40 and 99 < steps.timeouts["bench"] <= 100  # what is left
    assert not report["ok"] and [s["ok"] for s in report["steps"]] == [False, True]
    assert report["tests"] == {"tests": 3, "failures": 1, "errors": 0, "skipped": 1, "passed": 1,
                               "failed": ["tests.test_cuda::test_b"]}
    assert report["bench"] == results and report["gpu"] == "NVIDIA H200"
    assert json.loads((tmp_path / "gpu_check.json").read_text()) == report
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert markdown.startswith("# GPU check: NVIDIA H200 (x1)") and "FAILED in" in markdown
    assert "| tests | 1 passed, 1 failed, 1 skipped |" in markdown
    assert "- tests.test_cuda::test_b" in markdown
    assert "stage 3 batch CRF\n| method | ms |" in markdown and "speedup" not in markdown


def test_a_step_without_time_left_is_not_started(tmp_path):
    steps = FakeSteps("", tests_seconds=0.3)
    report = gpu_check.run_check(str(tmp_path), 0.25, run=steps, device=lambda: DEVICE)
    assert set(steps.timeouts) == {"tests"}
    bench = report["steps"][1]
    assert bench["timed_out"] and bench["returncode"] is None and report["bench"] is None
    assert "| bench | stopped at its 0 s |" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_step_past_its_time_is_stopped_with_its_processes(tmp_path):
    sleeper = "import time; time.sleep(60)"
    parent = (f"import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', "
              f"{sleeper!r}]); print(child.pid, flush=True); time.sleep(60)")
    step = gpu_check.Step("slow", (sys.executable, "-c", parent))
    start = time.monotonic()
    result = gpu_check.run_step(step, 2.0, str(tmp_path))
    assert result.timed_out and result.returncode is None and not result.ok
    assert time.monotonic() - start < 20
    child = int((tmp_path / "slow.log").read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid):
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
