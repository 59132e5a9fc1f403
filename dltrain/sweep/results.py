"""What a sweep shows at the end: the best trials, the epochs it cost, the best configuration as a
ready-to-run recipe, Optuna's parameter importances, and (--plot) two PNGs.

Files go to <runs-dir>/sweeps/<study>/: best.yaml, optimization_history.png, parallel_coordinates.png.
"""

from __future__ import annotations

import json
import shlex
import warnings
from collections import Counter
from pathlib import Path

from rich.table import Table

from dltrain.core.status import Exit
from dltrain.core.words import plural
from dltrain.recipe.sweep import SweepSpec
from dltrain.rundir.writer import atomic_write, write_text
from dltrain.views.result import print_command

SHOWN = 10  # best trials in the table


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def format_params(values: dict) -> str:
    return " ".join(f"{key}={format_value(value)}" for key, value in values.items())


def report(console, study, spec: SweepSpec, doc: dict, *, runs_root: Path, plot: bool, source: str,
           epochs: int) -> int:
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if "surplus" not in t.user_attrs]
    ranked = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value,
                    reverse=spec.mode == "max")
    console.print(_table(study.study_name, spec, ranked[:SHOWN]), crop=False)  # wider than 80 columns in a log
    _print_counts(console, trials, spec, epochs)
    folder = Path(runs_root) / "sweeps" / study.study_name
    if not ranked:
        console.print("no trial completed: no best configuration", style="red")
        return Exit.FAILED
    best = ranked[0]
    path = write_best_recipe(folder / "best.yaml", best, spec, doc, study.study_name, source)
    console.print(f"best: trial {best.number}, {spec.metric} {best.value:.4f}  "
                  f"{format_params(spec.decode(best.params))}", markup=False, soft_wrap=True)
    console.print(f"best configuration: {path}", markup=False, soft_wrap=True)
    print_command(console, "run it:", f"dltrain run {shlex.quote(str(path))}")
    _print_importances(console, study)
    if plot:
        for written in write_plots(study, folder, spec.metric):
            console.print(f"plot: {written}", markup=False, soft_wrap=True)
    return Exit.OK


def _table(name: str, spec: SweepSpec, best: list) -> Table:
    table = Table(title=f"sweep {name}: best trials by {spec.metric} ({spec.mode})", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("trial", justify="right")
    table.add_column(spec.metric + (" (mean +- std)" if spec.seeds > 1 else ""), justify="right")
    for key in spec.params:
        table.add_column(key, min_width=min(len(key), 24))  # the key path is the point of the column
    table.add_column("epochs", justify="right")
    for rank, trial in enumerate(best, 1):
        value = f"{trial.value:.4f}"
        if spec.seeds > 1:
            value += f" +- {trial.user_attrs.get('std', 0.0):.4f}"
        values = spec.decode(trial.params)
        table.add_row(str(rank), str(trial.number), value, *(format_value(values.get(k)) for k in spec.params),
                      str(trial.user_attrs.get("epochs", "")))
    return table


def _print_counts(console, trials: list, spec: SweepSpec, epochs: int) -> None:
    from optuna.trial import TrialState

    states = Counter("interrupted" if t.state == TrialState.FAIL and "interrupted" in t.user_attrs
                     else t.state.name.lower() for t in trials)
    order = ("complete", "pruned", "fail", "interrupted", "running", "waiting")
    label = {"complete": "completed", "fail": "failed"}
    console.print(f"{plural(len(trials), 'trial')}: " + ", ".join(f"{states[s]} {label.get(s, s)}" for s in order if states[s]),
                  markup=False, soft_wrap=True)
    ran = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    used = sum(t.user_attrs.get("epochs", 0) for t in ran)
    budget = len(ran) * spec.seeds * epochs
    console.print(f"epochs trained: {used} of {budget} without pruning or early stopping "
                  f"({plural(len(ran), 'trial')} x {plural(spec.seeds, 'seed')} x {plural(epochs, 'epoch')})", markup=False, soft_wrap=True)
    for trial in [t for t in ran if t.state == TrialState.FAIL and "error" in t.user_attrs][:5]:
        console.print(f"trial {trial.number} failed: {trial.user_attrs['error'].strip().splitlines()[0]}",
                      markup=False, style="red", soft_wrap=True)


def write_best_recipe(path: Path, best, spec: SweepSpec, doc: dict, study_name: str, source: str) -> Path:
    """The best trial's configuration as a plain recipe (no `sweep:`): `dltrain run` it."""
    from dltrain.sweep.trial import trial_recipe

    values = spec.decode(best.params)
    recipe = trial_recipe(doc, values, name=f"{study_name}-best", source=source)
    seeds = f" (mean of {spec.seeds} seeds)" if spec.seeds > 1 else ""
    header = (f"# Best configuration of sweep `{study_name}` (from {source}): trial {best.number}, "
              f"{spec.metric} {best.value:.6g}{seeds}.\n# {format_params(values)}\n")
    write_text(path, header + recipe.to_yaml())
    return path


def _print_importances(console, study) -> None:
    import optuna
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # fewer than two completed trials, or nothing varied
        console.print(f"parameter importances: not available ({exc})", markup=False, soft_wrap=True)
        return
    for warning in caught:  # e.g. too few trials: importances are then reported as equal
        console.print(f"parameter importances: {warning.message}", markup=False, soft_wrap=True)
    console.print("parameter importances (Optuna's PED-ANOVA):")
    table = Table()
    table.add_column("param")
    table.add_column("importance", justify="right")
    for name, value in importances.items():
        table.add_row(name, f"{value:.3f}")
    console.print(table)


def write_plots(study, folder: Path, metric: str) -> list[Path]:
    """optimization_history.png and parallel_coordinates.png, drawn by optuna.visualization.matplotlib."""
    import matplotlib
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import (
        plot_optimization_history,
        plot_parallel_coordinate,
    )

    written = []
    for filename, draw in (("optimization_history.png", plot_optimization_history),
                           ("parallel_coordinates.png", plot_parallel_coordinate)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
            axes = draw(study, target_name=metric)
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        path = folder / filename
        atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=120, bbox_inches="tight"),
                     binary=True)
        plt.close(figure)
        written.append(path)
    return written
