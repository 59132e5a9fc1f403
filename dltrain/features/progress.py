"""What `dltrain run` shows while it trains: a live rich display on a terminal, one plain line per
epoch otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
import time

from dltrain.core.metrics import EPOCH_METRICS as SHOWN
from dltrain.train.events import Callback, FitState


def format_logs(logs: dict) -> str:
    parts = [f"{k} {logs[k]:.4f}" for k in SHOWN if k in logs]
    return "  ".join(parts)


class PlainProgress(Callback):
    """One line per epoch on stdout."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        print(f"epoch {state.epoch}/{state.epochs}  {format_logs(logs)}  lr {logs['lr']:.3g}  "
              f"{logs['seconds']:.2f}s", file=self.stream, flush=True)


class LiveProgress(Callback):
    """A rich progress bar over epochs and steps, updated at log points (no extra host syncs)."""

    def __init__(self, console):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )
        self.console = console
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console,
                                 transient=False)
        self.task = None
        self.steps_per_epoch = None
        self.last = ""
        self.started = 0.0

    def on_fit_start(self, state: FitState) -> None:
        self.progress.start()
        self.started = time.perf_counter()
        self.task = self.progress.add_task("epoch", total=state.epochs, completed=state.epoch, info="")

    def on_log(self, state: FitState, losses) -> None:
        if losses:
            speed = state.step / max(1e-9, time.perf_counter() - self.started)
            self.progress.update(self.task, description=f"epoch {state.epoch + 1}",
                                 info=f"step {state.step}  loss {losses[-1][1]:.4f}  {speed:.0f} steps/s  {self.last}")

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        self.last = format_logs({k: v for k, v in logs.items() if k.startswith("val_")})
        self.progress.update(self.task, completed=state.epoch, info=f"lr {logs['lr']:.3g}  {format_logs(logs)}")

    def on_fit_end(self, state: FitState) -> None:
        self.progress.stop()


def reporter_for(console):
    return LiveProgress(console) if console.is_terminal else PlainProgress()
