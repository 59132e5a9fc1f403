"""Every file and folder name inside a run directory (docs/runs.md lists what each holds).

The writer (writer.RunDir), the reader (reader.Run) and every feature that records into a run
take their names and paths from here, so the folder they write is the folder the others read.
"""

from __future__ import annotations

from pathlib import Path

RECIPE = "recipe.yaml"  # the resolved recipe
RUN_INFO = "run.json"  # status, how it ended, where and how it ran; what makes a folder a run directory
METRICS = "metrics.csv"  # one row per epoch
SUMMARY = "summary.json"  # best, final and test numbers, written at the end
ERROR = "error.txt"  # the traceback of a failed run
LOCK = "run.lock"  # while a process trains in the run directory (rundir.lock)

CHECKPOINTS = "checkpoints"  # the folder of the three below
LAST = "last.pt"  # every train.checkpoint_interval seconds, at the end, at a stop signal
PREVIOUS = "previous.pt"  # the last.pt it replaced: the fallback when last.pt is unreadable
BEST = "best.pt"  # the best epoch's weights, written with the next checkpoint

# TensorBoard event folders; the run's HParams session is written at the top of the run directory
TRAIN_EVENTS = "train"
VALIDATION_EVENTS = "validation"
DIAGNOSTICS_EVENTS = "diagnostics"
SESSION_EVENTS = "."
EVENT_FILES = "events.out.tfevents.*"  # what TensorBoard writes into each of them

DIAGNOSTICS = "diagnostics.jsonl"  # per-layer statistics, one JSON object per line
FORENSICS = "forensics.json"  # a diverged run's first non-finite layer and what led there
LANDSCAPE = "landscape.json"  # written by `dltrain landscape`, with its figure:
LANDSCAPE_FIGURE = "landscape.png"


class RunLayout:
    """The paths of a run directory's files; RunDir (which writes them) and Run (which reads them) are one."""

    path: Path

    @property
    def recipe_file(self) -> Path:
        return self.path / RECIPE

    @property
    def info_file(self) -> Path:
        return self.path / RUN_INFO

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY

    @property
    def error_file(self) -> Path:
        return self.path / ERROR

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    def events(self, folder: str) -> Path:
        """A TensorBoard event folder: TRAIN_EVENTS, VALIDATION_EVENTS, DIAGNOSTICS_EVENTS or SESSION_EVENTS."""
        return self.path / folder
