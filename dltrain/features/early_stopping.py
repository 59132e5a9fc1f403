"""Early stopping: stop after `patience` epochs without improvement of the monitored metric."""

from __future__ import annotations

import copy

from dltrain.core.status import RunStatus
from dltrain.core.words import plural
from dltrain.train.events import Callback, FitState, Monitor, StopTraining, read_metric


class EarlyStopping(Callback):
    """Stop after `patience` epochs without improvement; optionally end with the best weights."""

    def __init__(self, monitor: str, mode: str, patience: int, min_delta: float = 0.0, restore_best: bool = True):
        self.monitor = Monitor(monitor, mode, min_delta)
        self.patience, self.restore_best = patience, restore_best
        self.bad_epochs = 0
        self.best_weights: dict | None = None  # a copy on the training device: no disk round trip

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        if self.monitor.update(read_metric(logs, self.monitor.name), state.epoch):
            self.bad_epochs = 0
            if self.restore_best:
                self.best_weights = copy.deepcopy(state.learner.module.state_dict())
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            m = self.monitor
            raise StopTraining(RunStatus.EARLY_STOPPED,
                               f"early stopping: {m.name} did not improve for {plural(self.patience, 'epoch')} "
                               f"(best {m.best:.6g} at epoch {m.best_epoch})")

    def on_fit_end(self, state: FitState) -> None:
        if self.restore_best and self.best_weights is not None and (
                state.stop is None or state.stop.status.finished):
            state.learner.module.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {"monitor": self.monitor.state_dict(), "bad_epochs": self.bad_epochs,
                "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        self.monitor.load_state_dict(state["monitor"])
        self.bad_epochs, self.best_weights = state["bad_epochs"], state["best_weights"]
