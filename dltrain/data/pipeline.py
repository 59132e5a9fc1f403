"""From a data spec to tensors on the device: load, keep classes, split, cap, normalize."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dltrain.core.errors import DataError
from dltrain.data.registry import DATASETS, Arrays, DataSpec


@dataclass
class Split:
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class DataBundle:
    """The prepared data: splits (tensors on the device once `to()` ran) and what the task is."""

    train: Split
    val: Split | None
    test: Split | None
    task: str  # classification | regression
    num_classes: int | None
    class_names: list[str] | None
    input_shape: tuple[int, ...]  # per sample, e.g. (64,) or (1, 8, 8)
    target_dim: int  # regression outputs per sample
    batch_size: int  # resolved (`full` -> the training set size)
    stats: dict = field(default_factory=dict)  # normalization fitted on train: kept for the record
    name: str = ""  # the dataset's registry name, for messages
    target_shape: tuple[int, ...] = ()  # per sample: () class label, (k,) regression, (T, k) per time step
    # data.normalize_target: {"shift": [...], "scale": [...]} per target column, fitted on train; a
    # prediction in the data's units is output * scale + shift
    target_stats: dict | None = None

    def describe(self) -> dict:
        return {"task": self.task, "train": len(self.train), "val": len(self.val) if self.val else 0,
                "test": len(self.test) if self.test else 0, "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "batch_size": self.batch_size,
                **({"target_normalization": self.target_stats} if self.target_stats else {})}


def _keep_classes(x, y, classes: list[int]):
    present = set(np.unique(y).tolist())
    missing = [c for c in classes if c not in present]
    if missing:
        raise DataError(f"data.classes: labels {missing} do not occur in this dataset (labels: {sorted(present)})")
    mask = np.isin(y, classes)
    relabel = {c: i for i, c in enumerate(classes)}
    return x[mask], np.array([relabel[int(v)] for v in y[mask]], dtype=np.int64)


def _split(x, y, fraction: float, seed: int, stratify: bool):
    """Seeded split; stratified for classification so rare classes appear on both sides."""
    from dltrain.data.split import split_indices
    if fraction <= 0:
        return x, y, x[:0], y[:0]
    strat = y if stratify and np.min(np.bincount(y)) >= 2 else None
    n_take = max(1, round(len(x) * fraction))
    if strat is not None and n_take < len(np.unique(y)):
        strat = None  # too few samples to put every class on both sides
    rest, take = split_indices(len(x), n_take, seed, strat)
    return x[rest], y[rest], x[take], y[take]


def prepare(spec: DataSpec, seed: int, images: bool = False) -> DataBundle:
    """`images`: the model takes images, not flat features; flat samples that are images
    (Arrays.image_shape: `digits`) are then shaped as images, before normalization, exactly as
    the dataset's explicit `as_images: true` would."""
    arrays: Arrays = DATASETS.build(spec, seed)
    if images and arrays.image_shape is not None:
        arrays.x = arrays.x.reshape(-1, *arrays.image_shape)
        if arrays.x_test is not None:
            arrays.x_test = arrays.x_test.reshape(-1, *arrays.image_shape)
    x, y = arrays.x, arrays.y
    classification = arrays.task == "classification"
    class_names = arrays.class_names
    x_test, y_test = arrays.x_test, arrays.y_test
    if spec.classes is not None:
        if not classification:
            raise DataError("data.classes: this dataset is a regression task; `classes` needs class labels")
        x, y = _keep_classes(x, y, spec.classes)
        if x_test is not None:
            x_test, y_test = _keep_classes(x_test, y_test, spec.classes)
        if class_names is not None:
            class_names = [class_names[c] for c in spec.classes]
    if x_test is None:
        x, y, x_test, y_test = _split(x, y, spec.test_fraction, seed, classification)
    # val_fraction is a fraction of the whole dataset, like test_fraction
    val_share = spec.val_fraction / max(1e-9, 1 - (spec.test_fraction if arrays.x_test is None else 0))
    x_train, y_train, x_val, y_val = _split(x, y, min(val_share, 0.95), seed + 1, classification)
    if spec.limit is not None and spec.limit < len(x_train):
        rng = np.random.default_rng(seed + 2)
        keep = np.sort(rng.choice(len(x_train), spec.limit, replace=False))
        x_train, y_train = x_train[keep], y_train[keep]
    if len(x_train) < 2:
        raise DataError(f"data: only {len(x_train)} training samples left after splitting and `limit`")
    stats = _normalize(spec.normalize, x_train, [x_val, x_test])
    target_stats = None
    if not classification and spec.normalize_target:
        # copies: they are scaled in place
        y_train, y_val, y_test = (np.array(y, dtype=np.float32) for y in (y_train, y_val, y_test))
        target_stats = _standardize_targets(y_train, [y_val, y_test])
    num_classes = None
    if classification:
        if spec.classes is not None:
            num_classes = len(spec.classes)
        elif class_names is not None:
            num_classes = len(class_names)
        else:
            num_classes = int(max(part.max() for part in (y_train, y_val, y_test) if len(part)) + 1)
    batch = len(x_train) if spec.batch_size == "full" else int(spec.batch_size)
    return DataBundle(
        train=Split(x_train, y_train),
        val=Split(x_val, y_val) if len(x_val) else None,
        test=Split(x_test, y_test) if len(x_test) else None,
        task=arrays.task, num_classes=num_classes, class_names=class_names,
        input_shape=tuple(x_train.shape[1:]),
        target_dim=1 if classification else int(y_train.shape[-1]),
        batch_size=batch, stats=stats, name=spec.name, target_shape=tuple(y_train.shape[1:]),
        target_stats=target_stats)


def _standardize_targets(train: np.ndarray, others: list[np.ndarray]) -> dict:
    """Regression targets to zero mean, unit std per target column, fitted on the training split:
    a network's outputs start near 0 with unit scale, so targets in the hundreds (diabetes) are
    otherwise far out of reach of a few epochs. In place; returns what undoes it."""
    axes = tuple(range(max(1, train.ndim - 1)))  # all but the target columns: samples (and time steps)
    shift = train.mean(axis=axes)
    scale = train.std(axis=axes)
    scale = np.where(scale > 1e-12, scale, 1.0)  # a constant target stays finite
    for array in [train, *others]:
        array -= shift.astype(np.float32)
        array /= scale.astype(np.float32)
    return {"shift": shift.reshape(-1).tolist(), "scale": scale.reshape(-1).tolist()}


def _normalize(how: str, train: np.ndarray, others: list[np.ndarray]) -> dict:
    """Fit on the training split only (fitting on all data leaks the test set), apply to all, in place."""
    if how == "none":
        return {"normalize": "none"}
    # per feature for (N, F) and sequences (N, T, F); per channel for images (N, C, H, W)
    axes = {2: (0,), 3: (0, 1)}.get(train.ndim, (0, *range(2, train.ndim)))
    if how == "standardize":
        shift = train.mean(axis=axes, keepdims=True)
        scale = train.std(axis=axes, keepdims=True)
    else:  # minmax to [0, 1]
        shift = train.min(axis=axes, keepdims=True)
        scale = train.max(axis=axes, keepdims=True) - shift
    scale = np.where(scale > 1e-12, scale, 1.0).astype(np.float32)  # constant features stay finite
    for array in [train, *others]:
        array -= shift.astype(np.float32)
        array /= scale
    return {"normalize": how, "shift": shift.reshape(-1).tolist(), "scale": scale.reshape(-1).tolist()}
