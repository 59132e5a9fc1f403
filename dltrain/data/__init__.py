"""Datasets: registered loaders returning arrays, then one shared pipeline that filters classes,
splits, caps and normalizes. Batches are fed by `loader.ArrayLoader`, which slices a permuted
index (no per-sample Dataset/collate: on small data that overhead dominates the arithmetic)."""

from dltrain.data.registry import DATASETS, DataSpec, Arrays
from dltrain.data import tabular, sequences, images  # noqa: F401  (register the built-in datasets)
from dltrain.data.pipeline import DataBundle, prepare

__all__ = ["DATASETS", "DataSpec", "Arrays", "DataBundle", "prepare"]
