"""The non-finite guard: a run whose loss is NaN or infinite ends as `diverged`, naming epoch and step."""

from __future__ import annotations

import math

from dltrain.core.status import RunStatus
from dltrain.train.events import Callback, FitState, StopTraining


class NonFiniteGuard(Callback):
    """Stop with status `diverged` at the first non-finite batch loss, naming epoch and step."""

    def on_log(self, state: FitState, losses: list[tuple[int, float]]) -> None:
        for step, value in losses:
            if not math.isfinite(value):
                raise StopTraining(RunStatus.DIVERGED, f"diverged: non-finite loss ({value}) at epoch {state.epoch + 1}, "
                                               f"step {step}")

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        for key in ("train_loss", "val_loss"):
            if key in logs and not math.isfinite(logs[key]):
                raise StopTraining(RunStatus.DIVERGED, f"diverged: {key} is {logs[key]} at epoch {state.epoch}")
