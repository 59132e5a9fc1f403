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

# TensorBoard event folders: two TensorBoard runs per run, the fewest that keep train and validation
# overlaid in two colours (TensorBoard's older dashboards enable no run by default past 40 runs).
# The diagnostics are training-time records, in train/; the HParams session and its final numbers
# (best, test) are in validation/, so every metric the HParams dashboard shows sits in the session's
# own TensorBoard run. Runs made before this layout have the session at the top ("."), and
# diagnostics/ of their own.
TRAIN_EVENTS = "train"
VALIDATION_EVENTS = "validation"
DIAGNOSTICS_EVENTS = TRAIN_EVENTS
SESSION_EVENTS = VALIDATION_EVENTS
OLD_SESSION_EVENTS = "."
EVENT_FILE_PREFIX = "events.out.tfevents"  # how TensorBoard knows an event file
# `dltrain board` writes the experiment's HParams summary (every run's keys, which differ, the main
# metrics) into the runs root it serves, under this one name, replaced at each start
BOARD_EXPERIMENT = EVENT_FILE_PREFIX + ".dltrain-board"
EVENT_FILES = EVENT_FILE_PREFIX + ".*"  # what TensorBoard writes into each of them

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
