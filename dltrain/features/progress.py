"""What `dltrain run` shows while it trains (`log.progress`).

- `bar` (the default): on a terminal a live line, in this order and so that a narrow terminal
  cuts the bar, never the numbers: epoch n/N, the monitored metric, the latest batch loss, the
  time left, then the bar; each finished epoch leaves one line above it, as Keras's verbose=1
  does. Off a terminal (logs, CI, pipes) it is `epochs`.
- `epochs`: one plain line per finished epoch.
- `none`: nothing while training (the summary after it is still printed).
"""

from __future__ import annotations

import sys

from dltrain.core.metrics import EPOCH_METRICS as SHOWN
from dltrain.train.events import Callback, FitState

PROGRESS = ("bar", "epochs", "none")


def format_logs(logs: dict) -> str:
    parts = [f"{k} {logs[k]:.4f}" for k in SHOWN if k in logs]
    return "  ".join(parts)


def epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    width = len(str(epochs))
    return (f"epoch {epoch:>{width}}/{epochs}  {format_logs(logs)}  lr {logs['lr']:.3g}  "
            f"{logs['seconds']:.2f}s")


class PlainProgress(Callback):
    """One line per epoch on stdout."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        print(epoch_line(state.epoch, state.epochs, logs), file=self.stream, flush=True)


class LiveProgress(Callback):
    """A rich live line over the whole run, updated at log points (no extra host syncs)."""

    def __init__(self, console, monitor: str):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        self.console, self.monitor = console, monitor
        # fixed-width text first, the bar last and elastic: at 80 columns the bar shrinks, not the numbers
        self.progress = Progress(TextColumn("{task.fields[head]}"), TextColumn("ETA"),
                                 TimeRemainingColumn(), BarColumn(bar_width=None), console=console,
                                 transient=True, expand=True)
        self.task = None
        self.watched = ""  # the monitored metric at the last epoch's end
        self.epoch_start_step = 0
        self.steps_per_epoch: int | None = None

    def on_fit_start(self, state: FitState) -> None:
        self.progress.start()
        self.epoch_start_step = state.step
        if state.epoch:
            self.steps_per_epoch = state.step // state.epoch
        self.task = self.progress.add_task("", total=state.epochs, completed=state.epoch,
                                           head=self._head(state, None))

    def _head(self, state: FitState, loss: float | None) -> str:
        epoch = min(state.epoch + 1, state.epochs)
        width = len(str(state.epochs))
        parts = [f"epoch {epoch:>{width}}/{state.epochs}", self.watched, f"loss {loss:.4f}" if loss is not None else ""]
        return "  ".join(p for p in parts if p)

    def on_log(self, state: FitState, losses) -> None:
        if losses:
            done = state.epoch
            if self.steps_per_epoch:
                done += min(0.999, (state.step - self.epoch_start_step) / self.steps_per_epoch)
            self.progress.update(self.task, completed=done, head=self._head(state, losses[-1][1]))

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        self.steps_per_epoch = self.steps_per_epoch or state.step - self.epoch_start_step
        self.epoch_start_step = state.step
        name = self.monitor if self.monitor in logs else next((k for k in ("val_loss", "train_loss") if k in logs), None)
        self.watched = f"{name} {logs[name]:.4f}" if name else ""
        self.progress.console.print(self._epoch_line(state, logs), markup=False, highlight=False)
        self.progress.update(self.task, completed=state.epoch, head=self._head(state, None))

    def _epoch_line(self, state: FitState, logs: dict) -> str:
        """Keras's names (loss, acc, val_loss, val_acc), and what fits the terminal's width."""
        width = len(str(state.epochs))
        parts = [f"epoch {state.epoch:>{width}}/{state.epochs}"]
        parts += [f"{k.removeprefix('train_').replace('accuracy', 'acc')} {logs[k]:.4f}" for k in SHOWN if k in logs]
        parts += [f"lr {logs['lr']:.3g}", f"{logs['seconds']:.2f}s"]
        line = parts[0]
        for part in parts[1:]:
            if len(line) + 2 + len(part) > self.console.width:
                break
            line += "  " + part
        return line

    def on_fit_end(self, state: FitState) -> None:
        self.progress.stop()


def reporter_for(console, recipe) -> Callback | None:
    """The progress display `recipe.log.progress` asks for, on this console."""
    mode = recipe.log.progress
    if mode == "none":
        return None
    if mode == "bar" and console.is_terminal:
        es = recipe.train.early_stopping
        return LiveProgress(console, es.monitor if es else "val_loss")
    return PlainProgress()
