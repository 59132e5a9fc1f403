"""The recipe's typed sections: one frozen pydantic model per section, the components from the registries."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from dltrain.components import LOSSES, OPTIMIZERS, SCHEDULES
from dltrain.core.metrics import resolve_mode
from dltrain.core.errors import KeysError
from dltrain.core.registry import Spec
from dltrain.core.types import Mode, Monitorable, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from dltrain.core.yamlio import dump_yaml
from dltrain.data import DATASETS
from dltrain.models import ARCHITECTURES
from dltrain.recipe.sweep import SweepSpec



class EarlyStoppingSpec(Spec):
    monitor: Monitorable = "val_loss"
    mode: Mode = "auto"  # auto: max for accuracy, min otherwise
    patience: NonNegativeInt = 5  # epochs without improvement before stopping
    min_delta: NonNegativeFloat = 0.0  # smaller changes do not count as improvement
    restore_best: bool = True  # end with the best epoch's weights (test metrics use them)

    @model_validator(mode="after")
    def _resolve_mode(self):
        object.__setattr__(self, "mode", resolve_mode(self.mode, self.monitor))
        return self


class TrainSpec(Spec):
    epochs: PositiveInt = 20
    early_stopping: EarlyStoppingSpec | None = None
    grad_accumulation: PositiveInt = 1  # micro-batches per optimizer step
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # bf16/fp16: autocast mixed precision
    compile: bool = False  # torch.compile the model
    deterministic: bool = False  # torch.use_deterministic_algorithms(True)
    checkpoint_interval: NonNegativeFloat = 60.0  # seconds between checkpoints (0: at every epoch's end)
    checkpoint_every_steps: PositiveInt | None = None  # also checkpoint mid-epoch every N optimizer steps

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _true_means_defaults(cls, value):
        return {} if value is True else (None if value is False else value)


class ClipSpec(Spec):
    norm: PositiveFloat | None = None  # clip the global gradient norm to this
    norm_type: PositiveFloat = 2.0
    value: PositiveFloat | None = None  # clip every gradient element to [-value, value]

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.norm is None) == (self.value is None):
            raise KeysError(("norm", "value"), "expected exactly one of `norm` or `value`")
        return self


class RegularizationSpec(Spec):
    l1: NonNegativeFloat = 0.0  # adds l1 * sum|w| over weight matrices
    l2: NonNegativeFloat = 0.0  # adds l2 * sum w^2 over weight matrices (Keras convention, no 1/2)


class LogSpec(Spec):
    every_steps: PositiveInt = 10  # batch-level TensorBoard points and non-finite checks
    tensorboard: bool = True
    histograms: bool = False  # weight and gradient histograms each epoch
    diagnostics: bool = True  # per-layer health statistics and non-finite forensics (docs/diagnostics.md)
    diagnostics_every: PositiveInt = 100  # optimizer steps between per-layer statistics
    diagnostics_budget: PositiveFloat = 0.03  # diagnostics' share of training time (docs/diagnostics.md)
    train_eval: bool = False  # also evaluate the training split in eval mode each epoch: train_eval_* columns
    progress: Literal["bar", "epochs", "none"] = "bar"  # while training: live line + epoch lines, epoch lines, nothing


DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class Recipe(Spec):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
    seed: NonNegativeInt = 0
    device: str = "auto"
    data: DATASETS.spec_type
    model: ARCHITECTURES.spec_type
    loss: LOSSES.optional_spec_type = None  # None: chosen from the task when the data is known
    regularization: RegularizationSpec = RegularizationSpec()
    optimizer: OPTIMIZERS.spec_type = "adam"  # type: ignore[assignment]
    schedule: SCHEDULES.spec_type = "constant"  # type: ignore[assignment]
    clip: ClipSpec | None = None
    train: TrainSpec = TrainSpec()
    log: LogSpec = LogSpec()
    sweep: SweepSpec | None = None  # a search over this recipe: `dltrain sweep` (docs/sweeps.md)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value):
            raise ValueError(f"expected auto, cpu, cuda, cuda:N or mps; got `{value}`")
        return value

    def to_dict(self) -> dict:
        # no `sweep: null` in a plain recipe: a sweep's trial recipes must read as single runs
        exclude = {"sweep"} if self.sweep is None else None
        return _names_first(self.model_dump(mode="json", by_alias=True, exclude=exclude))

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())


def _names_first(value: Any) -> Any:
    """Put `name`/`arch` first in every mapping: the resolved recipe reads like a hand-written one."""
    if isinstance(value, dict):
        head = [k for k in ("name", "arch") if k in value]
        return {k: _names_first(value[k]) for k in head + [k for k in value if k not in head]}
    if isinstance(value, list):
        return [_names_first(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# loading
