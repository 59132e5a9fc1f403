"""K seeds trained side by side (runner/stacked.py) against the same K seeds one after another.

What it measures: whole runs as `dltrain run RECIPE --seeds K` makes them (build, run directories,
metrics.csv, checkpoints every epoch, TensorBoard off, the test pass), on the digits MLP: hidden
[128, 128], Adam, batch 64, no dropout, no early stopping (every run trains every epoch).
Throughput is models x epochs per second of wall time. For each K the two ways run back to back,
in alternating order, `--repeats` times; the ratio of each pair is what to read (the machine's
load changes between pairs), with its spread over the pairs.

Run: PYTHONPATH=$PWD python bench/stacked.py [--ks 1 4 8 16 32] [--epochs 10] [--repeats 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

OVERRIDES = ["model.hidden=[128,128]", "model.dropout=0.0", "train.early_stopping=null", "log.diagnostics=false",
             "log.tensorboard=false", "log.progress=none"]


def recipes(k: int, epochs: int, device: str) -> list:
    from dltrain.builder.objects import load_checked
    base = load_checked(Path(__file__).parents[1] / "recipes" / "quickstart.yaml",
                        [*OVERRIDES, f"train.epochs={epochs}", f"device={device}"])
    return [base.model_copy(update={"seed": seed}) for seed in range(k)]


def one_after_another(planned: list, root: Path) -> float:
    from dltrain.runner.execute import execute
    start = time.perf_counter()
    for recipe in planned:
        execute(recipe, root, argv=["bench"])
    return time.perf_counter() - start


def side_by_side(planned: list, root: Path) -> float:
    from dltrain.runner.execute import execute
    from dltrain.runner.stacked import execute_group
    start = time.perf_counter()
    if len(planned) == 1:
        execute(planned[0], root, argv=["bench"])  # a group of one is an ordinary run
    else:
        execute_group(planned, root, argv=["bench"])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"{args.epochs} epochs, {args.repeats} pairs per K")
    seconds: dict[tuple[int, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        side_by_side(recipes(2, 1, args.device), root)  # warm-up: imports, first kernels
        for repeat in range(args.repeats):
            for k in args.ks:
                planned = recipes(k, args.epochs, args.device)
                ways = [("alone", one_after_another), ("stacked", side_by_side)]
                for name, way in (ways if repeat % 2 == 0 else ways[::-1]):
                    seconds.setdefault((k, name), []).append(way(planned, root))
    print("| K | one after another: models·epochs/s | side by side: models·epochs/s | ratio (median, min-max) |")
    print("| --- | --- | --- | --- |")
    for k in args.ks:
        alone, stacked = seconds[(k, "alone")], seconds[(k, "stacked")]
        ratios = [a / s for a, s in zip(alone, stacked)]
        work = k * args.epochs
        print(f"| {k} | {work / statistics.median(alone):.1f} | {work / statistics.median(stacked):.1f} | "
              f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |")


if __name__ == "__main__":
    main()
