"""Everything a GPU can prove, in one run within a time budget (``tools/gpu_check.py``,
``make gpu-check``).

1. The CUDA tests, ``pytest -m cuda tests/test_cuda.py``, within TESTS_SHARE of the budget:
   training steps in fp32, bf16 and fp16 (the scaler on an injected overflow), seeds and labels
   with channels_last and amp, stage 3 on CUDA, nccl with two GPUs, pinned memory.
2. The CUDA benchmark of stages 2 and 3, ``tools/bench.py --device cuda`` with BENCH_STAGES,
   within what is left: samples/s, TFLOP/s, MFU against the GPU's peak, peak memory, the batch
   CRF's share of a stage-3 step.
Each step writes ``<step>.log`` (stdout) and ``<step>.err.log`` (stderr) into the report folder,
then ``gpu_check.json`` and ``gpu_check.md`` sum up. A step past its time is stopped with its
processes and reported as timed out. The GPU is the first visible one (CUDA_VISIBLE_DEVICES
chooses; the nccl test needs two).
"""
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from xml.etree import ElementTree

from lib.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CUDA_TESTS = "tests/test_cuda.py"
BENCH_STAGES = ("train", "infer", "seg_crf", "seg_infer", "seg_train")
TESTS_SHARE = 0.4  # of the budget for the tests (about 2 minutes expected of 8); the rest: bench
REPORT_NAME = "gpu_check"  # gpu_check.json and gpu_check.md


@dataclass(frozen=True)
class Step:
    """One command of the check; ``name`` also names its logs."""

    name: str
    command: tuple


@dataclass
class StepResult:
    name: str
    command: str
    timeout_s: float
    seconds: float
    returncode: int  # None if it was stopped at its timeout
    timed_out: bool

    @property
    def ok(self):
        return self.returncode == 0


def plan(out, python=sys.executable):
    """The steps, in order: the CUDA tests (JUnit XML into ``out``), then the benchmark."""
    junit = os.path.join(os.path.abspath(out), "cuda_tests.xml")
    return [Step("tests", (python, "-m", "pytest", "-q", "-m", "cuda", CUDA_TESTS,
                           "--junitxml", junit)),
            Step("bench", (python, "tools/bench.py", "--device", "cuda", "--stages",
                           ",".join(BENCH_STAGES)))]


def dry_run_lines(out, budget_s):
    """What a run would do: each step's command and time limit."""
    tests, bench = plan(out)
    return [f"{tests.name} (at most {TESTS_SHARE * budget_s:.0f} s): {shlex.join(tests.command)}",
            f"{bench.name} (what is left of {budget_s:.0f} s): {shlex.join(bench.command)}",
            f"reports: {os.path.join(out, REPORT_NAME)}.json, .md"]


def check_budget(budget_s):
    if not budget_s > 0:
        raise UserError(f"--budget_s must be > 0 seconds, got {budget_s:g}")


def require_cuda():
    """UserError (one line) unless torch sees a CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU build"
        raise UserError(f"no CUDA GPU here (torch {torch.__version__}, {build}): the GPU check "
                        f"needs one")


def describe_device():
    import torch

    return {"gpu": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count(),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()}


def run_step(step, timeout_s, out):
    """Run ``step`` from the repository root, unbuffered, its output into ``out``; past
    ``timeout_s`` (or on Ctrl-C) stop it and every process it started."""
    start = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(os.path.join(out, f"{step.name}.log"), "w") as stdout, \
            open(os.path.join(out, f"{step.name}.err.log"), "w") as stderr:
        process = subprocess.Popen(step.command, cwd=REPO, stdout=stdout, stderr=stderr, env=env,
                                   start_new_session=True)
        try:
            returncode, timed_out = process.wait(timeout=timeout_s), False
        except subprocess.TimeoutExpired:
            returncode, timed_out = None, True
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return StepResult(step.name, shlex.join(step.command), timeout_s, time.monotonic() - start,
                      returncode, timed_out)


def junit_counts(junit_path):
    """Counts of the JUnit XML pytest wrote, and the ids of the tests that failed."""
    if not os.path.isfile(junit_path):
        return None
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    for suite in ElementTree.parse(junit_path).getroot().iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
        failed += [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
                   if case.find("failure") is not None or case.find("error") is not None]
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {**counts, "failed": failed}


def bench_output(log_path):
    """(tables, results): the benchmark's printed tables and its closing JSON line (None if it
    did not get that far)."""
    if not os.path.isfile(log_path):
        return "", None
    with open(log_path) as log:
        lines = log.read().rstrip().splitlines()
    if lines and lines[-1].startswith("{"):
        try:
            return "\n".join(lines[:-1]), json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    return "\n".join(lines), None


def run_check(out, budget_s, run=run_step, device=describe_device):
    """Run the steps within ``budget_s`` and write the reports into ``out``; return the
    report (a dict; ``ok`` says whether every step passed)."""
    os.makedirs(out, exist_ok=True)
    start = time.monotonic()
    results = []
    for step in plan(out):
        left = budget_s - (time.monotonic() - start)
        timeout = min(TESTS_SHARE * budget_s, left) if step.name == "tests" else left
        if timeout <= 0:
            results.append(StepResult(step.name, shlex.join(step.command), 0, 0, None, True))
            continue
        print(f"{step.name}: {shlex.join(step.command)} (at most {timeout:.0f} s)", flush=True)
        results.append(run(step, timeout, out))
    tables, bench = bench_output(os.path.join(out, "bench.log"))
    report = {"ok": all(r.ok for r in results), "budget_s": budget_s,
              "seconds": time.monotonic() - start, **device(),
              "steps": [{**asdict(r), "ok": r.ok} for r in results],
              "tests": junit_counts(os.path.join(out, "cuda_tests.xml")), "bench": bench}
    with open(os.path.join(out, f"{REPORT_NAME}.json"), "w") as file:
        json.dump(report, file, indent=1)
    with open(os.path.join(out, f"{REPORT_NAME}.md"), "w") as file:
        file.write(markdown_report(report, tables))
    return report


def _step_outcome(step, tests):
    if step["timed_out"]:
        return f"stopped at its {step['timeout_s']:.0f} s"
    if step["name"] == "tests" and tests:
        return (f"{tests['passed']} passed, {tests['failures'] + tests['errors']} failed, "
                f"{tests['skipped']} skipped")
    return "ok" if step["ok"] else f"failed (exit {step['returncode']})"


def markdown_report(report, tables):
    """The Markdown summary: device, steps, failed tests, the benchmark's tables."""
    lines = [(f"# GPU check: {report['gpu']} (x{report['gpus']}), torch {report['torch']}, "
              f"CUDA {report['cuda']}, cuDNN {report['cudnn']}"), "",
             (f"{'passed' if report['ok'] else 'FAILED'} in {report['seconds']:.0f} s of a "
              f"{report['budget_s']:.0f} s budget"), "",
             "| step | outcome | seconds | command |", "|---|---|---|---|"]
    lines += [f"| {s['name']} | {_step_outcome(s, report['tests'])} | {s['seconds']:.0f} | "
              f"`{s['command']}` |" for s in report["steps"]]
    if report["tests"] and report["tests"]["failed"]:
        lines += ["", "Failed tests (see tests.log):", ""]
        lines += [f"- {name}" for name in report["tests"]["failed"]]
    lines += ["", "## Benchmark", "", tables or "(no output; see bench.err.log)", ""]
    return "\n".join(lines)
