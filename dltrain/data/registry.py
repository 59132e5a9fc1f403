"""The dataset registry and the keys every dataset shares (`data.*` in a recipe)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from dltrain.core.errors import KeysError
from dltrain.core.registry import Registry, Spec
from dltrain.core.types import PositiveInt, Task
from dltrain.data.augment import AUGMENTATIONS


class DataSpec(Spec):
    """Keys shared by every dataset; each dataset adds its own (n_samples, noise, path, ...)."""

    root: str = "data"  # where downloads and caches live
    download: bool = False
    classes: list[int] | None = None  # keep only these labels, relabelled 0..k-1 in this order
    limit: PositiveInt | None = None  # cap on the number of training samples
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.15
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.15  # ignored where a dataset has a test split
    normalize: Literal["standardize", "minmax", "none"] = "standardize"  # fitted on the training split
    # regression: train on targets standardized on the training split; metrics in the data's units
    normalize_target: bool = True
    batch_size: PositiveInt | Literal["full"] = 64
    augment: list[AUGMENTATIONS.spec_type] = []  # applied to training batches only, in this order

    @model_validator(mode="after")
    def _fractions_leave_training_data(self):
        if self.val_fraction + self.test_fraction >= 0.95:
            raise KeysError(("val_fraction", "test_fraction"), f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} "
                             "leaves (almost) no training data; expected a sum below 0.95")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise KeysError(("classes",), f"classes has repeated labels: {self.classes}")
        if self.classes is not None and len(self.classes) < 2:
            raise KeysError(("classes",), "classes must keep at least 2 labels")
        return self


DATASETS = Registry("dataset", base=DataSpec)


@dataclass
class Arrays:
    """What a dataset loader returns: features, targets, and an official test split if it has one."""

    x: np.ndarray  # (N, *feature_shape) float32
    y: np.ndarray  # (N,) int64 class labels, or (N, k) float32 regression targets
    task: Task
    class_names: list[str] | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    image_shape: tuple[int, ...] | None = None  # flat samples that are images of this (C, H, W) shape
