"""What mid-epoch checkpoints cost: epoch time of the quickstart recipe (digits MLP) with no step
checkpoints, a checkpoint every 10 steps, and one after every step, measured side by side in one
process, interleaved so machine load hits all variants alike.

    PYTHONPATH=. python bench/checkpoint_overhead.py [epochs] [repeats]

Each checkpoint is a full, fsynced, atomically renamed file (~300 KB here); the in-loop check that
decides whether one is due is one comparison per step.
"""

from __future__ import annotations

import csv
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from dltrain.recipe.load import load_recipe
from dltrain.runner.execute import execute

VARIANTS = {"epoch ends only": [], "every 10 steps": ["train.checkpoint_every_steps=10"],
            "every step": ["train.checkpoint_every_steps=1"]}


def epoch_seconds(overrides: list[str], epochs: int, root: Path) -> float:
    recipe = load_recipe(Path(__file__).parents[1] / "recipes/quickstart.yaml",
                         [f"train.epochs={epochs}", "train.early_stopping=false", "log.tensorboard=false",
                          "device=cpu", *overrides])
    result = execute(recipe, root)
    with open(result.run.path / "metrics.csv", newline="") as handle:
        return statistics.median(float(row["seconds"]) for row in csv.DictReader(handle))


def main() -> None:
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.set_num_threads(1)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for name, overrides in VARIANTS.items():
                times[name].append(epoch_seconds(overrides, epochs, Path(tmp)))
    base = statistics.median(times["epoch ends only"])
    print(f"{'variant':<24} {'epoch s (median)':>17} {'ratio':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<24} {median:>17.4f} {median / base:>7.2f}x")


if __name__ == "__main__":
    main()
