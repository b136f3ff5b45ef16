"""Benchmark every stage (data loading, training step, seed inference, evaluation, and stage 3's
batch CRF, inference and training step) at S = 321.

Prints a table per stage, then the results as one JSON line.
Example: python tools/bench.py --stages data,eval
"""
import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lib.cli import run_main  # noqa: E402


def main(argv=None):
    from lib.tooling.bench import run_benchmark
    from lib.tooling.bench.common import STAGES, comma_list, options_from_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (a smoke test)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--stages", type=comma_list(str),
                        help=f"some of {','.join(STAGES)} (default all)")
    parser.add_argument("--batch", type=int, help="batch of the data, train and seg_train "
                        "stages (default 15; training on CPU: 2)")
    parser.add_argument("--size", type=int, help="network input side S (default 321)")
    parser.add_argument("--workers", type=int, help="loader worker processes (default 1)")
    parser.add_argument("--width_mult", dest="widths", type=comma_list(float),
                        help="width_mult values to train and infer (default 1; CPU: 0.25,1)")
    parser.add_argument("--modes", type=comma_list(str),
                        help="fp32, bf16, fp16, each optionally -cl for channels_last")
    parser.add_argument("--eval_images", type=int, help="label PNGs to evaluate")
    parser.add_argument("--crf_workers", type=int,
                        help="W, the CRF worker processes of stage 3 (default: the cores)")
    parser.add_argument("--seg_batch", type=int,
                        help="test_batch_size of stage 3's batched inference (default 8; CPU: 4)")
    parser.add_argument("--dataset_name", help="the class count of the seeds, batch CRF and "
                        "inference (default voc12_sgan; coco14: 81 labels, 640 x 480 images)")
    parser.add_argument("--work_dir", help="keep the generated files here")
    print(json.dumps(run_benchmark(options_from_arguments(parser.parse_args(argv)))))


if __name__ == "__main__":
    run_main(main)
