"""metrics.csv: one row per epoch."""

from __future__ import annotations

from dltrain.rundir.writer import RunDir
from dltrain.train.events import Callback, FitState


class MetricsFile(Callback):
    """metrics.csv: one row per epoch, rewritten atomically.

    An epoch's rewrite is not fsynced: fsyncs slow training even from the writer thread
    (bench/background_work.py), and the checkpoint written in the same epoch holds the same rows,
    so `dltrain resume` rebuilds the file after a power cut. The run's end writes it durably."""

    def __init__(self, run: RunDir):
        self.run = run

    def on_fit_start(self, state: FitState) -> None:
        if state.history:  # resumed: drop rows a killed process wrote after its last checkpoint
            self.run.write_metrics(state.history)

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        self.run.write_metrics(state.history, later=True, durable=False)

    def on_fit_end(self, state: FitState) -> None:
        try:
            if state.history:
                self.run.write_metrics(state.history, later=True)  # durable, and the last word on the rows
        finally:
            self.run.wait_for_writes()
