"""TensorBoard event files: train/ and validation/ under the same tags.

Tag names put the main curves first: TensorBoard's Time Series dashboard groups cards by the tag's
first path part, sorts the groups by character code (capitals before lower case) and opens only
the first two. So loss and metrics are `Curves/<metric>`, the optimizer's numbers
`Optimizer/<name>`, and the diagnostics' many histogram groups (lower case: `activations/`,
`gradients/`, `weights/`, `diagnostics/`) come after them, closed.
"""

from __future__ import annotations

import time

from dltrain.core.metrics import METRICS
from dltrain.rundir.layout import TRAIN_EVENTS, VALIDATION_EVENTS
from dltrain.rundir.writer import RunDir, event_writer
from dltrain.train.events import Callback, FitState

CURVES = "Curves/"  # loss and metrics, train and validation overlaid; the batch loss
OPTIMIZER = "Optimizer/"  # learning rate, gradient norm, penalty


def curve_tag(metric: str) -> str:
    """The tag of an epoch metric (`loss`, `accuracy`, ...), the same in train/ and validation/."""
    return CURVES + metric


class TensorBoard(Callback):
    """Scalars in `train/` and `validation/` writers under the same tags, so TensorBoard overlays
    the two curves on one chart (as Keras does); batch loss every log interval.

    Batch-loss points are handed to the event writer in bursts (at a checkpoint, at a flush, or
    once `BURST_SECONDS` have passed), and so are the epoch scalars (at each flush), each with the
    wall time it was logged at:
    one point at a time wakes TensorBoard's writer thread (whose pure-Python CRC then competes
    with the training thread for the GIL) at every log interval, which measured ~10% of a small
    model's epoch. The events are the same.

    The points are written and the event files flushed at an epoch's end once `FLUSH_SECONDS`
    have passed since the last flush (TensorBoard rereads them every 5 s, so a live chart is at
    most that much later), and at the run's end: a flush waits for the writer thread."""

    BURST_SECONDS = 30.0
    FLUSH_SECONDS = 5.0

    def __init__(self, run: RunDir, histograms: bool = False):
        self.run, self.histograms = run, histograms
        self.writers: dict = {}
        self.purge: dict = {}
        self.batch_points: list[tuple[int, float, float]] = []  # (step, mean loss, wall time)
        self.epoch_points: list[tuple[str, str, float, int, float]] = []  # (folder, tag, value, epoch, wall time)
        self.last_burst = self.last_flush = time.monotonic()

    def on_fit_start(self, state: FitState) -> None:
        if state.step:  # resumed: hide points a killed process logged after its last checkpoint
            self.purge = {TRAIN_EVENTS: state.step + 1, VALIDATION_EVENTS: state.epoch + 1}

    def _writer(self, folder: str):
        if folder not in self.writers:
            self.writers[folder] = event_writer(self.run.path, folder, purge_step=self.purge.get(folder))
        return self.writers[folder]

    def on_log(self, state: FitState, losses: list[tuple[int, float]]) -> None:
        if losses:
            mean = sum(v for _, v in losses) / len(losses)
            self.batch_points.append((losses[-1][0], mean, time.time()))
            if time.monotonic() - self.last_burst >= self.BURST_SECONDS:
                self._write_batch_points()

    def _write_batch_points(self) -> None:
        if self.batch_points:
            train = self._writer(TRAIN_EVENTS)
            for step, mean, walltime in self.batch_points:
                train.add_scalar(CURVES + "batch_loss", mean, step, walltime=walltime)
            self.batch_points.clear()
        self.last_burst = time.monotonic()

    def on_checkpoint(self, state: FitState) -> None:
        self._write_points()  # what precedes a checkpoint is no less kept than before

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        epoch, now = state.epoch, time.time()
        for metric in METRICS:
            if f"train_{metric}" in logs:
                self.epoch_points.append((TRAIN_EVENTS, curve_tag(metric), logs[f"train_{metric}"], epoch, now))
            if f"val_{metric}" in logs:
                self.epoch_points.append((VALIDATION_EVENTS, curve_tag(metric), logs[f"val_{metric}"], epoch, now))
        self.epoch_points.append((TRAIN_EVENTS, OPTIMIZER + "learning_rate", logs["lr"], epoch, now))
        for extra in ("grad_norm", "penalty"):
            if extra in logs:
                self.epoch_points.append((TRAIN_EVENTS, OPTIMIZER + extra, logs[extra], epoch, now))
        if self.histograms:
            train = self._writer(TRAIN_EVENTS)
            for name, param in state.learner.module.named_parameters():
                train.add_histogram(f"weights/{name}", param.detach().float().cpu(), epoch)
        if time.monotonic() - self.last_flush >= self.FLUSH_SECONDS:
            self._write_points()
            for writer in self.writers.values():
                writer.flush()
            self.last_flush = time.monotonic()

    def _write_points(self) -> None:
        """Hand the points kept since the last burst to the event writers."""
        self._write_batch_points()
        for folder, tag, value, epoch, walltime in self.epoch_points:
            self._writer(folder).add_scalar(tag, value, epoch, walltime=walltime)
        self.epoch_points.clear()

    def on_fit_end(self, state: FitState) -> None:
        self._write_points()  # those kept since the last burst, and of an epoch cut short
        for writer in self.writers.values():
            writer.close()
