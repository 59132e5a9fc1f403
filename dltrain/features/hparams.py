"""TensorBoard HParams records, so that the HParams dashboard compares runs.

Each run is one HParams *session*, in its validation/ event folder: a session-start summary
(every recipe key, flattened to dotted names) when the run starts and a session-end summary (its
status) when it ends. The metrics are ordinary scalars of that same TensorBoard run:
`Curves/loss`, `Curves/accuracy`, ... (written by features.tensorboard), plus
`summary/best_<monitor>` and `summary/test_*` written here at the end. (TensorBoard looks a
metric up in the session's run or a folder below it, never beside it: a session at the top of
the run directory found validation/ only when the runs root was served, not the run itself.)

The runs never write an experiment summary: TensorBoard takes the *first* it finds for the whole
logdir, so one run's would hide keys only later runs have. `dltrain board` writes one for all the
runs it serves (`experiment`), with the keys that differ first (the dashboard ticks the first 5)
and the main metrics first (it ticks the first 5 of those too). Runs that differ only in seed share
a `group_name`, so the dashboard groups seed repeats.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from dltrain.core.metrics import METRICS
from dltrain.core.status import RunStatus
from dltrain.rundir.layout import BOARD_EXPERIMENT, EVENT_FILE_PREFIX, OLD_SESSION_EVENTS, SESSION_EVENTS
from dltrain.train.events import Callback, FitState

# the HParams dashboard's word for each status
TENSORBOARD_STATUS = {RunStatus.RUNNING: "STATUS_RUNNING", RunStatus.COMPLETED: "STATUS_SUCCESS",
                      RunStatus.EARLY_STOPPED: "STATUS_SUCCESS", RunStatus.PRUNED: "STATUS_UNKNOWN",
                      RunStatus.DIVERGED: "STATUS_FAILURE", RunStatus.INTERRUPTED: "STATUS_UNKNOWN",
                      RunStatus.FAILED: "STATUS_FAILURE", RunStatus.UNKNOWN: "STATUS_UNKNOWN"}

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


def session_folder(run_path: Path) -> str:
    """Where the run's session is: validation/, or the top of a run made before that layout
    (whose resumed process must end the session its first process started)."""
    path = Path(run_path)
    old = path.is_dir() and any(p.name.startswith(EVENT_FILE_PREFIX) and p.name != BOARD_EXPERIMENT
                                for p in path.iterdir())
    return OLD_SESSION_EVENTS if old else SESSION_EVENTS


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
            from dltrain.rundir.writer import event_writer
            self.writer = event_writer(self.run_path, session_folder(self.run_path))
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


# -- the experiment, for `dltrain board` ----------------------------------------------------------

def _kind(values: list) -> str:
    if all(isinstance(v, bool) for v in values):
        return "DATA_TYPE_BOOL"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "DATA_TYPE_FLOAT64"
    return "DATA_TYPE_STRING"


def hparam_infos(recipes: list[dict]) -> list:
    """One HParamInfo per key any run has; `differs` when the runs' values differ or only some runs
    have the key (a key of one optimizer's parameters is as much a difference as the optimizer);
    never for `seed` (below)."""
    from tensorboard.plugins.hparams import api_pb2
    values = [hparam_values(r) for r in recipes]
    keys = sorted({k for v in values for k in v})
    infos = []
    for key in keys:
        seen = [v[key] for v in values if key in v]
        distinct = {json.dumps(x, sort_keys=True) for x in seen}
        kind = _kind(seen)
        # `seed` never counts: its repeats are grouped into one row (group_name), whose seed means
        # nothing, and it would take one of the five keys the dashboard ticks
        differs = key != "seed" and (len(distinct) > 1 or len(seen) < len(values))
        info = api_pb2.HParamInfo(name=key, type=api_pb2.DataType.Value(kind), differs=differs)
        if kind != "DATA_TYPE_FLOAT64":  # the dashboard's filter checkboxes
            texts = sorted({x if isinstance(x, bool) else str(x) for x in seen}, key=str)
            info.domain_discrete.extend(texts)
        infos.append(info)
    return infos


def metric_names(recorded: set[str], monitors: set[str], tests: set[str]) -> list[tuple[str, str]]:
    """(tag, display name) of the session metrics, main ones first: validation loss and metrics,
    each best monitored value, the test numbers; the dashboard ticks the first five."""
    from dltrain.features.tensorboard import curve_tag
    names = [(curve_tag(m), f"val {m}") for m in METRICS if m in recorded]
    names += [(f"{SUMMARY_TAG}best_{m}", f"best {m}") for m in sorted(monitors)]
    names += [(f"{SUMMARY_TAG}{t}", t.replace("_", " ", 1)) for t in sorted(tests, key=_test_order)]
    return names


def _test_order(name: str) -> tuple[int, str]:
    metric = name.removeprefix("test_")
    return (METRICS.index(metric) if metric in METRICS else len(METRICS), name)


def experiment(recipes: list[dict], recorded: set[str], monitors: set[str], tests: set[str]):
    """The experiment summary of a set of runs: their hyperparameters and the session metrics."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(group="", tag=tag), display_name=display)
               for tag, display in metric_names(recorded, monitors, tests)]
    info = api_pb2.Experiment(description=f"{len(recipes)} dltrain runs; the keys that differ come first",
                              time_created_secs=time.time(), hparam_infos=hparam_infos(recipes), metric_infos=metrics)
    return _plugin_summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=info))
