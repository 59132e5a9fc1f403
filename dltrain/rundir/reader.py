"""Reading run directories back: the records `list`, `show`, `compare` and `board` work from.

Nothing here writes. A run directory is one holding `run.json` (layout.py); everything else in it
(summary.json, metrics.csv, recipe.yaml) may be missing while a run is going or after a kill,
and the readers say so instead of guessing.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from dltrain.core.errors import UsageError, did_you_mean
from dltrain.core.status import RunStatus
from dltrain.rundir import layout
from dltrain.rundir.layout import RUN_INFO, RunLayout

GLOB_CHARS = set("*?[")
RUN_SUFFIX = re.compile(r"-\d{8}-\d{6}-[0-9a-f]{4}$")  # a run is named <recipe name><this> (writer.new_run_dir)


@dataclass
class Run(RunLayout):
    """One run directory, read lazily."""

    path: Path
    info: dict = field(repr=False)  # run.json

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> RunStatus:
        return RunStatus.read(self.info.get("status"))

    @property
    def finished(self) -> bool:
        """Ran to its planned end or stopped early on purpose: its numbers are comparable."""
        return self.status.finished

    @cached_property
    def killed(self) -> bool:
        """run.json says `running`, but its process is gone from this host: killed before it could record
        how it ended (SIGKILL, out of memory, a crash of the machine). `dltrain resume` continues it."""
        from dltrain.rundir.lock import process_gone
        return self.status is RunStatus.RUNNING and process_gone(self.path, self.info.get("host"), self.info.get("pid"))

    @property
    def batch(self) -> str | None:
        """The batch (`dltrain run ... --seeds N`) or sweep study (`dltrain sweep`) the run belongs to."""
        sweep = self.info.get("sweep")
        return self.info.get("batch") or (sweep.get("name") if isinstance(sweep, dict) else None)

    @property
    def started(self) -> str:
        return self.info.get("started") or ""

    @cached_property
    def summary(self) -> dict:
        path = self.summary_file
        return _read_json(path) if path.is_file() else {}

    @cached_property
    def recipe(self) -> dict:
        """The resolved recipe as a plain mapping ({} when recipe.yaml is missing)."""
        from dltrain.core.yamlio import read_yaml_file
        path = self.recipe_file
        if not path.is_file():
            return {}
        value, _ = read_yaml_file(path)
        return value if isinstance(value, dict) else {}

    @cached_property
    def recipe_text(self) -> str:
        path = self.recipe_file
        return path.read_text(encoding="utf-8") if path.is_file() else ""

    @cached_property
    def history(self) -> list[dict]:
        """metrics.csv as a list of rows of floats (epoch and step as ints); [] when absent."""
        path = self.metrics_file
        if not path.is_file():
            return []
        with path.open(newline="", encoding="utf-8") as handle:
            return [{k: _number(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]

    @property
    def epochs_done(self) -> int:
        return self.summary.get("epochs", len(self.history))

    @property
    def epochs_planned(self) -> int | None:
        return (self.recipe.get("train") or {}).get("epochs")

    @property
    def monitor(self) -> tuple[str, str]:
        m = self.info.get("monitor") or {}
        return m.get("name", "val_loss"), m.get("mode", "min")

    @property
    def weights_file(self) -> Path | None:
        """The checkpoint to take weights from: best.pt (the validated weights restore_best would keep),
        else last.pt; None when the run saved neither."""
        for name in (layout.BEST, layout.LAST):
            if (self.checkpoints / name).is_file():
                return self.checkpoints / name
        return None

    @property
    def wall_time(self) -> float | None:
        return self.info.get("wall_time_s", self.summary.get("wall_time_s"))

    @property
    def parameters(self) -> int | None:
        return self.info.get("parameters", self.summary.get("parameters"))

    def recorded_metrics(self) -> set[str]:
        """Base metric names this run recorded per epoch (`loss`, `accuracy`, ...)."""
        names = set()
        for row in self.history[:1]:
            names |= {k.partition("_")[2] for k in row if k.startswith(("train_", "val_"))}
        names |= {k.removeprefix("test_") for k in self.summary.get("test", {})}
        return names


def _number(text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        return text  # type: ignore[return-value]
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: cannot be read as JSON ({err})") from None
    return value if isinstance(value, dict) else {}


def is_run_dir(path: Path) -> bool:
    return (Path(path) / RUN_INFO).is_file()


def load_run(path: Path) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path}: no such run directory")
    if not is_run_dir(path):
        raise UsageError(f"{path} is not a run directory: it has no run.json "
                         "(run directories are made by `dltrain run`)")
    return Run(path, _read_json(path / RUN_INFO))


def all_runs(root: Path) -> list[Run]:
    """Every run directly under `root`, newest first (by start time, then name)."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"runs root `{root}` does not exist (runs are written to ./runs unless --runs-dir says otherwise)")
    runs = [load_run(p) for p in root.iterdir() if p.is_dir() and is_run_dir(p)]
    return sorted(runs, key=lambda r: (r.started, r.name), reverse=True)


def batches(runs: list[Run]) -> dict[str, list[Run]]:
    """Batch name -> its runs, in the order the runs started; newest batch first."""
    found: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.started, r.name)):
        if run.batch:
            found.setdefault(run.batch, []).append(run)
    return dict(sorted(found.items(), key=lambda item: (item[1][-1].started, item[0]), reverse=True))


def latest_batch(root: Path) -> tuple[str, list[Run]]:
    runs = all_runs(root)
    if not runs:
        raise UsageError(f"no runs under `{root}`; make some with `dltrain run RECIPE`")
    found = batches(runs)
    if not found:
        raise UsageError(f"no batch under `{root}` to compare by default; name the runs "
                         "(`dltrain compare RUN RUN ...`, a glob, or a directory), or make a batch "
                         "with `dltrain run RECIPE... --seeds N`")
    return next(iter(found.items()))


def select(selectors: list[str], root: Path) -> list[Run]:
    """Runs named by each selector, in order, without repeats. A selector is a run directory,
    a directory of runs, a run name under `root`, a batch name, or a glob over either."""
    chosen: dict[Path, Run] = {}
    for selector in selectors:
        for run in _select_one(selector, Path(root)):
            chosen.setdefault(run.path.resolve(), run)
    return list(chosen.values())


def _select_one(selector: str, root: Path) -> list[Run]:
    path = Path(selector)
    if path.is_dir():
        if is_run_dir(path):
            return [load_run(path)]
        inside = [p for p in sorted(path.iterdir()) if p.is_dir() and is_run_dir(p)]
        if inside:
            return [load_run(p) for p in inside]
        raise UsageError(f"{path} is not a run directory (it has no run.json) and holds no runs")
    runs = all_runs(root) if root.is_dir() else []
    found = batches(runs)
    if selector in found:
        return found[selector]
    if GLOB_CHARS & set(selector):
        matched = sorted(Path(p) for p in _glob(selector) if is_run_dir(Path(p)))
        matched += [r.path for r in runs if fnmatch.fnmatchcase(r.name, selector)]
        matched += [r.path for name, rs in found.items() if fnmatch.fnmatchcase(name, selector) for r in rs]
        if not matched:
            raise UsageError(f"`{selector}` matches no run under `{root}`")
        return [load_run(p) for p in dict.fromkeys(matched)]
    by_name = {r.name: r for r in runs}
    if selector in by_name:
        return [by_name[selector]]
    if path.exists():
        raise UsageError(f"{path} is not a run directory")
    raise UsageError(f"no run or batch named `{selector}` under `{root}`"
                     f"{did_you_mean(selector, list(by_name) + list(found))}")


def _glob(pattern: str) -> list[str]:
    import glob
    return glob.glob(pattern)


def find_run(selector: str | Path | None, root: Path, *, where: Callable[[Run], bool] | None = None) -> Run:
    """The one run a selector names, for `show`, `resume` and `model.from`. In order:
    nothing: the newest run under `root`; a run directory; a run's name; a recipe's name (its newest
    run, named <recipe name>-<YYYYmmdd-HHMMSS>-<4 hex>); a unique prefix of a run's name. Names are
    looked up under `root`, or under the folder a path gives (`runs/transfer-a`). `where` skips the
    runs that lack something (a checkpoint, say). UsageError saying what was looked for otherwise."""
    root = Path(root)
    if selector is None:
        runs = [r for r in all_runs(root) if where is None or where(r)]
        if not runs:
            raise UsageError(f"no runs under `{root}`")
        return runs[0]
    path = Path(selector)
    if path.is_dir():
        return load_run(path)
    folder, name = (path.parent, path.name) if len(path.parts) > 1 else (root, str(selector))
    runs = [r for r in (all_runs(folder) if folder.is_dir() else []) if where is None or where(r)]
    exact = [r for r in runs if r.name == name]
    of_recipe = [r for r in runs if r.name.startswith(name) and RUN_SUFFIX.fullmatch(r.name[len(name):])]
    prefixed = [r for r in runs if r.name.startswith(name)]
    if exact or of_recipe or len(prefixed) == 1:
        return (exact or of_recipe or prefixed)[0]  # runs are newest first
    if prefixed:
        raise UsageError(f"`{selector}` names {len(prefixed)} runs under `{folder}` (the newest: "
                         f"{', '.join(r.name for r in prefixed[:3])}); give the full name")
    known = list(dict.fromkeys([RUN_SUFFIX.sub("", r.name) for r in runs] + [r.name for r in runs]))
    raise UsageError(f"no run directory `{selector}`, and no run named `{name}` or `{name}-<time>-<id>` under "
                     f"`{folder}`{did_you_mean(name, known)}")


def flatten(recipe: dict) -> dict[str, Any]:
    """Dotted keys for every setting. A component mapping shows its name under its own key and its
    parameters below it: {model: {init: {name: he_normal, mode: fan_in}}} -> model.init = he_normal,
    model.init.mode = fan_in (so the key users vary is the key they see). Lists stay whole values."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                if key == "name" and prefix:
                    flat[prefix] = sub
                else:
                    walk(f"{prefix}.{key}" if prefix else str(key), sub)
        else:
            flat[prefix] = value

    walk("", recipe)
    return flat


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
