"""Data-parallel throughput: one recipe trained by `dltrain run` on 1 process and by
`dltrain run --nproc N` on N, interleaved round by round.

What it measures: training samples per second, from each run's metrics.csv (the `seconds` column:
an epoch's training and validation, without the processes' start-up or the first epoch, which
warms up), the median over epochs, and the run's wall time from the command line (start-up
included). The ratio N/1 of the medians is what to read; the spread (min-max over rounds) says how
much the machine's load moved it.

Run: PYTHONPATH=$PWD python bench/distributed.py [--nproc 2] [--rounds 3] [--epochs 6] [--device cpu|cuda]
     [--hidden 512]

On the CPU the processes share the machine's cores (torchrun gives each OMP_NUM_THREADS=1, and the
1-process run is given the same, so each process computes on one core). With 2 cores shared by other
jobs, as where this was written, expect little or no gain: see docs/distributed.md for the numbers.
With --device cuda, each rank takes its own GPU: --nproc at most the GPUs present (nccl refuses two
ranks on one GPU).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def recipe(epochs: int, hidden: int, device: str) -> dict:
    return {"name": "bench-dp", "seed": 0, "device": device,
            "data": {"name": "digits", "val_fraction": 0.15, "test_fraction": 0.15, "normalize": "standardize",
                     "batch_size": 256},
            "model": {"arch": "mlp", "hidden": [hidden, hidden]},
            "optimizer": {"name": "adam", "lr": 1e-3},
            "train": {"epochs": epochs}, "log": {"tensorboard": False}}


def one_run(path: Path, runs: Path, nproc: int) -> tuple[float, float]:
    """(samples per second, median over epochs after the first; wall seconds of the command)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    extra = ["--nproc", str(nproc)] if nproc > 1 else []
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dltrain", "run", str(path), "--runs-dir", str(runs), *extra],
                   env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    train = int(yaml.safe_load((run / "run.json").read_text())["data"]["train"])
    rates = [train / float(row["seconds"]) for row in rows[1:]]
    return statistics.median(rates), wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    results: dict[int, list[tuple[float, float]]] = {1: [], args.nproc: []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(recipe(args.epochs, args.hidden, args.device)))
        for r in range(args.rounds):
            for nproc in (1, args.nproc) if r % 2 == 0 else (args.nproc, 1):  # interleaved, alternating order
                runs = Path(tmp) / f"runs-{r}-{nproc}"
                results[nproc].append(one_run(path, runs, nproc))
    print(f"digits, mlp [{args.hidden}, {args.hidden}], global batch 256, {args.epochs} epochs, device "
          f"{args.device}, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    print(f"{'processes':>9}  {'samples/s (median of rounds)':>28}  {'min-max':>17}  {'wall s':>12}")
    for nproc, got in results.items():
        rates, walls = [g[0] for g in got], [g[1] for g in got]
        print(f"{nproc:>9}  {statistics.median(rates):>28,.0f}  {min(rates):>8,.0f}-{max(rates):<8,.0f}  "
              f"{statistics.median(walls):>12.1f}")
    ratios = [b[0] / a[0] for a, b in zip(results[1], results[args.nproc])]
    print(f"throughput ratio {args.nproc}/1 per round: " + ", ".join(f"{x:.2f}" for x in ratios)
          + f" (median {statistics.median(ratios):.2f})")


if __name__ == "__main__":
    main()
