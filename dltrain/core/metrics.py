"""Metric names a run records, and which way is better for each."""

from __future__ import annotations

# Metrics a run records, by task; `train_` and `val_` prefixes select the split.
CLASSIFICATION_METRICS = ("loss", "accuracy")
REGRESSION_METRICS = ("loss", "mae", "rmse")
MONITORABLE = sorted({f"{split}_{m}" for split in ("train", "val")
                      for m in CLASSIFICATION_METRICS + REGRESSION_METRICS})


def default_mode(metric: str) -> str:
    """`mode: auto`: accuracy is maximized, every loss and error metric minimized."""
    return "max" if metric.endswith("accuracy") else "min"
