"""Run everything a GPU can prove, the CUDA tests and then the CUDA benchmark of stages 2 and 3,
within a time budget; write gpu_check.json and gpu_check.md (and each step's log) into --out.

Example: python tools/gpu_check.py --out gpu_check --budget_s 480
Exit status: 0 if every step passed, 1 if one failed or ran out of time, 2 without a GPU.
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import run_main  # noqa: E402


def main(argv=None):
    from lib.tooling import gpu_check

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gpu_check", help="report folder (default gpu_check)")
    parser.add_argument("--budget_s", type=float, default=480,
                        help="seconds for all the steps together (default 480)")
    parser.add_argument("--dry_run", action="store_true",
                        help="print the commands and their time limits, run nothing (no GPU "
                             "needed)")
    args = parser.parse_args(argv)
    gpu_check.check_budget(args.budget_s)
    if args.dry_run:
        print("\n".join(gpu_check.dry_run_lines(args.out, args.budget_s)))
        return 0
    gpu_check.require_cuda()
    report = gpu_check.run_check(args.out, args.budget_s)
    print(f"{'passed' if report['ok'] else 'FAILED'} in {report['seconds']:.0f} s: "
          f"{args.out}/{gpu_check.REPORT_NAME}.md")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    run_main(main)
