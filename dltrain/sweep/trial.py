"""One trial of a sweep: its configuration run once per seed, each an ordinary run directory.

The trial's recipe is the sweep's recipe without its `sweep:` section, with the trial's values
applied as overrides (so `dltrain run runs/<trial>/recipe.yaml` repeats that one run), and its
run.json carries `sweep: {name, trial, params, seed_index}` for `dltrain compare` to group by.
Every epoch the run reports the sweep's metric to Optuna; when the pruner says so the run stops
with status `pruned`, its partial record kept.
"""

from __future__ import annotations

import copy
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from dltrain.core.status import RunStatus
from dltrain.recipe.load import apply_override, validate_document
from dltrain.recipe.schema import Recipe
from dltrain.recipe.sweep import SweepSpec
from dltrain.train.events import Callback, FitState, StopTraining, read_metric


def trial_recipe(doc: dict, values: dict, *, name: str, seed_index: int = 0, source: str | None = None) -> Recipe:
    """The recipe of one run: `doc` without `sweep`, the trial's values applied, seed shifted by seed_index."""
    trial = copy.deepcopy({k: v for k, v in doc.items() if k != "sweep"})
    for key, value in values.items():
        apply_override(trial, key.split("."), copy.deepcopy(value), {})
    trial["seed"] = int(trial.get("seed", 0)) + seed_index
    trial["name"] = name
    return validate_document(trial, source=source)


class OptunaReport(Callback):
    """Reports the sweep's metric every epoch (step = epochs of earlier seeds + epoch); prunes on request,
    except at the trial's last step, where there is nothing left to save."""

    def __init__(self, trial, metric: str, pruner: str, step_offset: int, last_step: int):
        self.trial, self.metric, self.pruner = trial, metric, pruner
        self.offset, self.last_step = step_offset, last_step
        self.values: list[float] = []

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        value = read_metric(logs, self.metric)
        self.values.append(value)
        if not math.isfinite(value):
            return  # Optuna refuses non-finite reports; the non-finite guard ends this run
        self.trial.report(value, self.offset + state.epoch)
        if self.offset + state.epoch < self.last_step and self.trial.should_prune():
            raise StopTraining(RunStatus.PRUNED, f"pruned by the {self.pruner} pruner at epoch {state.epoch}: "
                                         f"{self.metric} {value:.6g}")


@dataclass
class Outcome:
    state: RunStatus  # COMPLETED, PRUNED or FAILED
    value: float | None = None  # mean over seeds of each run's best epoch value of the metric
    std: float | None = None
    scores: list[float] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    epochs: int = 0  # epochs trained, all seeds together
    reason: str = ""


def best_of(values: list[float], mode: str) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return (min if mode == "min" else max)(finite) if finite else None


def run_trial(trial, spec: SweepSpec, doc: dict, *, study_name: str, runs_root: Path, argv: list[str],
              source: str | None) -> Outcome:
    """Run every seed of the trial's configuration; stop at the first pruned or failed run.

    Raises KeyboardInterrupt when a run was interrupted, RecipeError/DataError when the trial's
    recipe cannot be built (a combination the checks of single values could not see)."""
    from dltrain.runner.execute import execute

    values = spec.suggest(trial)
    outcome = Outcome(RunStatus.COMPLETED)
    for seed_index in range(spec.seeds):
        recipe = trial_recipe(doc, values, name=f"{study_name}-t{trial.number}", seed_index=seed_index,
                              source=source)
        epochs = recipe.train.epochs
        report = OptunaReport(trial, spec.metric, spec.pruner.name, step_offset=seed_index * epochs,
                              last_step=spec.seeds * epochs)
        tag = {"name": study_name, "trial": trial.number, "params": values, "seed_index": seed_index,
               "seeds": spec.seeds, "metric": spec.metric, "mode": spec.mode}
        result = execute(recipe, runs_root, pruning=report, run_info={"sweep": tag}, argv=argv)
        outcome.runs.append(str(result.run.path))
        outcome.epochs += result.summary["epochs"]
        if result.status is RunStatus.INTERRUPTED:
            raise KeyboardInterrupt
        if not result.status.finished:  # pruned, failed or diverged
            outcome.state = RunStatus.PRUNED if result.status is RunStatus.PRUNED else RunStatus.FAILED
            outcome.reason = result.reason
            return outcome
        score = best_of(report.values, spec.mode)
        if score is None:
            return Outcome(RunStatus.FAILED, runs=outcome.runs, epochs=outcome.epochs,
                           reason=f"{spec.metric} was never finite")
        outcome.scores.append(score)
    outcome.value = statistics.fmean(outcome.scores)
    outcome.std = statistics.stdev(outcome.scores) if len(outcome.scores) > 1 else 0.0
    return outcome
