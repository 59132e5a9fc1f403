"""Conducting a study: every arm x seed trained as an ordinary run of one named batch, then measured,
judged and reported. Runs go one after another (arm by arm); `dltrain compare BATCH` and
TensorBoard read them like any batch. Each run's run.json carries `study: {name, arm}`.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from dltrain.core.errors import UsageError
from dltrain.study.spec import Study
from dltrain.study.verdict import ArmResult, Verdict, judge


@dataclass
class Outcome:
    study: Study
    batch: str
    arms: dict[str, ArmResult]
    runs: dict[str, list]  # arm -> its Runs (rundir.reader), in seed order
    verdicts: list[Verdict]
    seconds: float
    started: str
    load: str  # the machine's load when the study started
    exit_code: int


def conduct(study: Study, runs_root: Path, console, argv: list[str]) -> Outcome:
    from dltrain.runner.batch import STOPS_BATCH, batch_name, worst

    runs_root = Path(runs_root)
    started, clock, load = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.monotonic(), machine_load()
    batch = batch_name([], f"{study.name}-{dt.datetime.now():%Y%m%d-%H%M%S}", runs_root)
    prepared = {}
    for i, step in enumerate(study.spec.prepare):
        result = _train(study.recipe("prepare", i), runs_root, f"{batch}-prepare", study, step.name, argv)
        if result.exit_code != 0:
            raise UsageError(f"the prepared run `{step.name}` ended {result.status}: {result.reason}; "
                             "the arms that start from it cannot run")
        prepared[step.name] = str(result.run.path)
    codes: list[int] = []
    planned = study.arm_recipes(prepared)
    total, done = sum(len(r) for _, r in planned), 0
    for arm, recipes in planned:
        for recipe in recipes:
            done += 1
            console.print(f"study {study.name}: run {done}/{total}: arm {arm}, seed {recipe.seed}", markup=False)
            try:
                result = _train(recipe, runs_root, batch, study, arm, argv)
            except KeyboardInterrupt:
                codes.append(130)
                break
            console.print(f"  {result.status}: {result.reason} ({result.summary['wall_time_s']:.1f}s)", markup=False)
            codes.append(result.exit_code)
            if result.exit_code in STOPS_BATCH:
                break
        if codes and codes[-1] in STOPS_BATCH:
            break
    runs = arm_runs(study, batch, runs_root)
    arms = {name: measure_arm(name, rs, study.quantities) for name, rs in runs.items()}
    verdicts = [judge(claim, arms) for claim in study.spec.claims]
    # a diverged run is a finding here, not a failure of the study
    code = worst([c for c in codes if c != 3])
    return Outcome(study, batch, arms, runs, verdicts, time.monotonic() - clock, started, load, code)


def _train(recipe, runs_root: Path, batch: str, study: Study, arm: str, argv):
    from dltrain.runner.execute import execute
    return execute(recipe, runs_root, argv=argv, batch=batch, run_info={"study": {"name": study.name, "arm": arm}})


def arm_runs(study: Study, batch: str, runs_root: Path) -> dict[str, list]:
    from dltrain.rundir.reader import all_runs, batches
    found = batches(all_runs(runs_root)).get(batch, [])
    out: dict[str, list] = {arm.name: [] for arm in study.spec.arms}
    for run in found:
        arm = (run.info.get("study") or {}).get("arm")
        if arm in out:
            out[arm].append(run)
    return out


def measure_arm(name: str, runs: list, names: list[str]) -> ArmResult:
    """A run that did not finish keeps only what it measured at initialization: its last epoch is
    not a final result (as in `dltrain compare`, which never pools such runs)."""
    from dltrain.study.quantities import DEPTH_QUANTITIES, measure
    return ArmResult(name, [r.status for r in runs],
                     {q: [measure(r, q) if r.finished or q in DEPTH_QUANTITIES else None for r in runs] for q in names})


def machine_load() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "unknown"
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs ({platform.machine()})"
