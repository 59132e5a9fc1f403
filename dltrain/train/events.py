"""Callbacks: features of a run that hook into the loop at a fixed set of events.

Events (the only ones; a misspelt method name is caught at registration), in the order a run
fires them:
  on_fit_start(state)            before the first epoch (or after a resume)
  on_epoch_start(state)
  on_step_end(state, step)       after every optimizer step (state.step already counts it);
                                 step is a StepEnd: the pre-clip grad norm when the loop measured
                                 it (a device tensor: reading it is a host sync, so do that only at
                                 on_log), and whether the fp16 GradScaler skipped the step (its
                                 gradients overflowed; the weights did not change). Fires every
                                 step: keep it to device work and Python bookkeeping, no .item()
  on_log(state, losses)          every `log.every_steps` optimizer steps: host copies of the
                                 batch losses since the last log (the loop's one sync point)
  on_checkpoint(state)           mid-epoch, after an optimizer step, when a checkpoint is due
                                 (train.checkpoint_interval seconds passed, or
                                 train.checkpoint_every_steps steps) or a stop signal arrived;
                                 and once more before on_fit_end when the run ended by its plan
                                 (completed, stopped early, pruned): the final checkpoint.
                                 state.progress holds the position within the epoch (None at an
                                 epoch boundary)
  on_eval_start(state, split)    before the validation pass of an epoch (split: "val"), with the
                                 model about to be switched to eval mode
  on_eval_end(state, split, metrics)  after it; metrics = {"loss": ..., "accuracy": ...}, host floats
  on_epoch_end(state, logs)      after validation; logs = {"train_loss": ..., "val_loss": ..., ...}
  on_fit_end(state)              always, also after a stop or an error (state.stop says why)
  on_run_end(state, summary)     once the run's test pass is done and summary.json is written
                                 (summary["status"] is the run's final status); fired by the runner,
                                 not by fit(), and not at all when fit() is used alone
A callback stops training by raising StopTraining (from any event up to on_epoch_end); every
callback still sees the event that raised. on_epoch_start is not fired again when a resumed run
continues an epoch from a mid-epoch checkpoint. The test pass runs after on_fit_end, on the
weights fit() left, with no events around it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from dltrain.core.status import RunStatus

EVENTS = ("on_fit_start", "on_epoch_start", "on_step_end", "on_log", "on_checkpoint", "on_eval_start",
          "on_eval_end", "on_epoch_end", "on_fit_end", "on_run_end")


class StopTraining(Exception):
    """Raised by a callback to end training, with the status the run ends in (COMPLETED, EARLY_STOPPED,
    PRUNED, DIVERGED or INTERRUPTED; its word is accepted too)."""

    def __init__(self, status: RunStatus | str, reason: str):
        super().__init__(reason)
        self.status, self.reason = RunStatus(status), reason


@dataclass
class FitState:
    """What the loop knows; callbacks read it (and the learner through it)."""

    learner: Any
    epochs: int  # planned
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    history: list[dict] = field(default_factory=list)  # logs of every completed epoch
    stop: StopTraining | None = None
    callbacks: list["Callback"] = field(default_factory=list)
    progress: Any = None  # EpochProgress of the epoch under way (None between epochs)
    checkpoint_every_steps: int = 0  # also a checkpoint every N optimizer steps; 0: none by count
    checkpoint_interval: float = 0.0  # seconds between checkpoints; 0: one at every epoch's end
    stop_request: Any = None  # signals.StopRequest: set by SIGINT/SIGTERM, read after every step
    checkpointed_at: float = field(default_factory=time.monotonic)  # when the last one was written
    checkpointed_step: int = 0  # (or training began), and at which optimizer step
    # distributed runs (runner/distributed.py): called on every rank after every optimizer step and
    # every epoch's end; the ranks agree there on a stop signal and on a StopTraining rank 0 decided
    agree: Any = None
    # distributed: whether rank 0's checkpoint interval has passed, as the ranks agreed at the last
    # agreement point (each rank's own clock would let one rank checkpoint while the others train on)
    interval_agreed: bool | None = None

    @property
    def stop_requested(self) -> bool:
        return self.stop_request is not None and self.stop_request.signum is not None

    def checkpoint_written(self) -> None:
        """The checkpoint's writer says so: the interval counts from here."""
        self.checkpointed_at, self.checkpointed_step = time.monotonic(), self.step

    def _interval_passed(self) -> bool:
        if self.interval_agreed is not None:  # distributed: every rank checkpoints at rank 0's time
            return self.interval_agreed
        return time.monotonic() - self.checkpointed_at >= self.checkpoint_interval

    def checkpoint_due(self, last_batch: bool) -> bool:
        """After an optimizer step: is a mid-epoch checkpoint due? (At the last batch the epoch's
        end decides: epoch_checkpoint_due.) One clock read a step when the interval is set."""
        if self.stop_requested:
            return True
        if last_batch:
            return False
        every = self.checkpoint_every_steps
        if every and self.step % every == 0:
            return True
        return self.checkpoint_interval > 0 and self._interval_passed()

    def epoch_checkpoint_due(self) -> bool:
        """At an epoch's end: is a checkpoint due?"""
        every = self.checkpoint_every_steps
        return (self.checkpoint_interval == 0 or self._interval_passed()
                or bool(every) and self.step - self.checkpointed_step >= every)


@dataclass(frozen=True)
class StepEnd:
    """What on_step_end tells about the optimizer step just taken."""

    grad_norm: Any = None  # pre-clip global L2 norm of the gradients (a device tensor), when measured:
    #                        at log points, and every step when clipping
    skipped: bool = False  # the fp16 GradScaler found inf/NaN gradients and did not step


class Callback:
    # The key this callback's state is saved under in checkpoints. The builder sets it from the
    # feature registry; a callback made by hand (tests, fit() used alone) is saved under its class name.
    state_name: str | None = None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in vars(cls):
            if name.startswith("on_") and name not in EVENTS:
                raise TypeError(f"{cls.__name__}.{name} is not a callback event (events: {', '.join(EVENTS)})")


def state_name(callback: Callback) -> str:
    return getattr(callback, "state_name", None) or type(callback).__name__


def fire(callbacks: list[Callback], event: str, *args) -> None:
    """Call `event` on every callback; a StopTraining is raised after all of them ran."""
    stop: StopTraining | None = None
    for cb in callbacks:
        method = getattr(cb, event, None)
        if method is None:
            continue
        try:
            method(*args)
        except StopTraining as exc:
            stop = stop or exc
    if stop is not None:
        raise stop


class Monitor:
    """Tracks the best value of one metric: improvement means better by more than min_delta."""

    def __init__(self, name: str, mode: str, min_delta: float = 0.0):
        self.name, self.mode, self.min_delta = name, mode, min_delta
        self.best: float | None = None
        self.best_epoch: int | None = None

    def update(self, value: float, epoch: int) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None or (value < self.best - self.min_delta if self.mode == "min"
                                 else value > self.best + self.min_delta):
            self.best, self.best_epoch = value, epoch
            return True
        return False

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


def read_metric(logs: dict, name: str) -> float:
    if name not in logs:
        raise KeyError(f"metric `{name}` is not recorded by this run (recorded: {', '.join(sorted(logs))})")
    return logs[name]
