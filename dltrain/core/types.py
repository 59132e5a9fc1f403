"""Constrained value types shared by recipe specs and component signatures."""

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from dltrain.core.metrics import check_monitorable

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]  # e.g. a dropout rate or a split fraction
UnitInterval = Annotated[float, Field(gt=0, le=1)]
Task = Literal["classification", "regression"]  # what a dataset asks for, and what a loss fits
Monitorable = Annotated[str, AfterValidator(check_monitorable)]  # a per-epoch metric: val_loss, train_accuracy, ...
Mode = Literal["auto", "min", "max"]  # auto: the metric's own direction (core.metrics.DIRECTION)
