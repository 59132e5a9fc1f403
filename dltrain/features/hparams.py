"""TensorBoard HParams records, so that the HParams dashboard compares runs.

Each run is one HParams *session*: its directory gets a session-start summary (every recipe key,
flattened to dotted names) when the run starts and a session-end summary (its status) when it
ends. The metrics are ordinary scalars the dashboard finds in the session's sub-runs:
`validation/epoch_loss`, `train/epoch_accuracy`, ... (written by records.TensorBoard), plus
`summary/best_<monitor>` and `summary/test_*` written here at the end.

No experiment summary is written on purpose: TensorBoard uses the *first* experiment summary it
finds for the whole logdir, which would hide keys that only later runs have. Without one it
builds the experiment from all sessions' hparams, and marks the keys that differ.
Runs that differ only in seed share a `group_name`, so the dashboard groups seed repeats.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from dltrain.core.status import RunStatus

# the HParams dashboard's word for each status
TENSORBOARD_STATUS = {RunStatus.RUNNING: "STATUS_RUNNING", RunStatus.COMPLETED: "STATUS_SUCCESS",
                      RunStatus.EARLY_STOPPED: "STATUS_SUCCESS", RunStatus.PRUNED: "STATUS_UNKNOWN",
                      RunStatus.DIVERGED: "STATUS_FAILURE", RunStatus.INTERRUPTED: "STATUS_UNKNOWN",
                      RunStatus.FAILED: "STATUS_FAILURE", RunStatus.UNKNOWN: "STATUS_UNKNOWN"}
from dltrain.train.events import Callback, FitState
SUMMARY_TAG = "summary/"


def hparam_values(recipe: dict) -> dict[str, Any]:
    """Flattened recipe keys with values TensorBoard can hold (bool, number, string)."""
    from dltrain.rundir.reader import flatten
    from dltrain.views.compare import value_text
    out = {}
    for key, value in flatten(recipe).items():
        out[key] = value if isinstance(value, (bool, int, float, str)) else value_text(value)
    return out


def group_name(recipe: dict) -> str:
    """Same for runs whose recipes differ only in `seed` (and in nothing else)."""
    rest = {k: v for k, v in recipe.items() if k != "seed"}
    return "config-" + hashlib.sha1(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _plugin_summary(tag: str, data) -> Any:
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])


def session_start(recipe: dict, start_time: float):
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2
    info = plugin_data_pb2.SessionStartInfo(group_name=group_name(recipe), start_time_secs=start_time)
    for key, value in hparam_values(recipe).items():
        # bool before number: bool is an int in Python, but TensorBoard has a bool type
        if isinstance(value, bool):
            info.hparams[key].bool_value = value
        elif isinstance(value, (int, float)):
            info.hparams[key].number_value = value
        else:
            info.hparams[key].string_value = value
    return _plugin_summary(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=info))


def session_end(status: RunStatus, end_time: float):
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    info = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(TENSORBOARD_STATUS[status]),
                                          end_time_secs=end_time)
    return _plugin_summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=info))


class HParams(Callback):
    """The HParams session of one run, written into the run directory itself: its start when a new
    run's training starts (so the dashboard lists runs still going), its end once the summary is written."""

    def __init__(self, run_path: Path, recipe: dict, resumed: bool = False):
        self.run_path, self.recipe, self.resumed = Path(run_path), recipe, resumed
        self.writer = None

    def on_fit_start(self, state: FitState) -> None:
        if not self.resumed:  # a resumed run's session started with its first process
            self.start()

    def on_run_end(self, state: FitState, summary: dict) -> None:
        self.finish(summary["status"], summary)

    def _open(self):
        if self.writer is None:  # a resumed run writes its end into a new event file of the same session
            from dltrain.rundir.layout import SESSION_EVENTS
            from dltrain.rundir.writer import event_writer
            self.writer = event_writer(self.run_path, SESSION_EVENTS)
        return self.writer

    def start(self) -> None:
        self._open().file_writer.add_summary(session_start(self.recipe, time.time()))
        self.writer.flush()

    def finish(self, status: RunStatus, summary: dict) -> None:
        """Final numbers the dashboard shows as metrics, then the session's end with its status."""
        self._open()
        step = summary.get("epochs") or 0
        if summary.get("best_value") is not None:
            self.writer.add_scalar(f"{SUMMARY_TAG}best_{summary['monitor']}", summary["best_value"],
                                   summary.get("best_epoch") or step)
        for key, value in summary.get("test", {}).items():
            self.writer.add_scalar(f"{SUMMARY_TAG}{key}", value, step)
        self.writer.file_writer.add_summary(session_end(status, time.time()))
        self.writer.close()
