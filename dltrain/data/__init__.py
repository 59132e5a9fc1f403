"""Datasets: registered loaders returning arrays, then one shared pipeline that filters classes,
splits, caps and normalizes. Batches are fed by `loader.ArrayLoader`, which slices a permuted
index (no per-sample Dataset/collate: on small data that overhead dominates the arithmetic)."""

from dltrain.data import images, sequences, tabular  # noqa: F401  (register the built-in datasets)
from dltrain.data.pipeline import DataBundle, prepare
from dltrain.data.registry import DATASETS, Arrays, DataSpec

__all__ = ["DATASETS", "DataSpec", "Arrays", "DataBundle", "prepare"]
