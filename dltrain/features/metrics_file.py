"""metrics.csv: one row per epoch."""

from __future__ import annotations

import time

from dltrain.rundir.writer import RunDir
from dltrain.train.events import Callback, FitState


class MetricsFile(Callback):
    """metrics.csv: one row per epoch, rewritten atomically at the first epoch's end
    `WRITE_SECONDS` after the last rewrite (a file rewritten every 20 ms epoch costs a few percent
    of it, and a reader watching a run does not need its rows sooner), and at the run's end.

    An epoch's rewrite is not fsynced: fsyncs slow training even from the writer thread
    (bench/background_work.py), and the checkpoints hold the same rows, so `dltrain resume`
    rebuilds the file from its checkpoint after a kill or a power cut. The run's end writes it durably."""

    WRITE_SECONDS = 1.0

    def __init__(self, run: RunDir):
        self.run = run
        self.written = -float("inf")  # time.monotonic() of the last rewrite: the first epoch's is due

    def on_fit_start(self, state: FitState) -> None:
        if state.history:  # resumed: drop rows a killed process wrote after its last checkpoint
            self.run.write_metrics(state.history)

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        if time.monotonic() - self.written >= self.WRITE_SECONDS:
            self.run.write_metrics(state.history, later=True, durable=False)
            self.written = time.monotonic()

    def on_fit_end(self, state: FitState) -> None:
        try:
            if state.history:
                self.run.write_metrics(state.history, later=True)  # durable, and the last word on the rows
        finally:
            self.run.wait_for_writes()
