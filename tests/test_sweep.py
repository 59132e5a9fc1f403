"""`dltrain sweep` end to end on tiny recipes: each trial an ordinary run directory, Optuna's study
in SQLite, grid/random/bayes, Hyperband pruning, seeds, two workers, continuing and refusing."""

import itertools
import json
import math
import os
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import run_dirs, tiny_recipe, write_recipe

QUIET = {"tensorboard": False}  # the event files are not under test here; they cost time


def sweep_doc(epochs=1, **sweep):
    return tiny_recipe(train={"epochs": epochs}, log=QUIET,
                       data={"name": "moons", "n_samples": 200, "batch_size": 32, "val_fraction": 0.2},
                       sweep=sweep)


def trial_runs(root: Path) -> list[dict]:
    """Every run directory under root: its run.json, resolved recipe and summary."""
    out = []
    for path in run_dirs(root):
        if (path / "run.json").is_file():
            out.append({"path": path, "info": json.loads((path / "run.json").read_text()),
                        "recipe": yaml.safe_load((path / "recipe.yaml").read_text()),
                        "summary": json.loads((path / "summary.json").read_text())})
    return out


def load_study(root: Path, name: str):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{(root / 'sweeps.db').resolve()}")


def test_grid_covers_exactly_the_product_of_the_choices(cli, tmp_path):
    lrs, hidden = [0.001, 0.01, 0.1], [[8], [16, 16]]
    recipe = write_recipe(tmp_path / "grid.yaml", sweep_doc(method="grid", params={"optimizer.lr": lrs,
                                                                                   "model.hidden": hidden}))
    result = cli("sweep", recipe, "--plot")
    assert result.code == 0, result.err
    runs = trial_runs(tmp_path / "runs")
    seen = [(r["recipe"]["optimizer"]["lr"], r["recipe"]["model"]["hidden"]) for r in runs]
    assert sorted(map(str, seen)) == sorted(map(str, itertools.product(lrs, hidden)))  # each once, nothing else
    for run in runs:
        tag = run["info"]["sweep"]
        assert tag["name"] == "tiny-grid" and run["info"]["status"] == "completed"
        assert tag["params"] == {"optimizer.lr": run["recipe"]["optimizer"]["lr"],
                                 "model.hidden": run["recipe"]["model"]["hidden"]}
        assert "sweep" not in run["recipe"]  # re-running a trial's recipe runs one run
    assert sorted(r["info"]["sweep"]["trial"] for r in runs) == list(range(6))
    # the table, the best recipe (ready to run: valid, no sweep), importances and plots
    assert "best trials by val_loss" in result.out and "parameter importances" in result.out
    best_file = tmp_path / "runs" / "sweeps" / "tiny-grid" / "best.yaml"
    best = yaml.safe_load(best_file.read_text())
    winner = min(runs, key=lambda r: min_val_loss(r["path"]))
    assert (best["optimizer"]["lr"], best["model"]["hidden"]) == (winner["recipe"]["optimizer"]["lr"],
                                                                  winner["recipe"]["model"]["hidden"])
    assert "sweep" not in best and cli("validate", best_file).code == 0
    for png in ("optimization_history.png", "parallel_coordinates.png"):
        assert (tmp_path / "runs" / "sweeps" / "tiny-grid" / png).read_bytes()[:4] == b"\x89PNG"
    # a trial's recipe.yaml is a plain recipe: running it is one ordinary run, not a sweep
    assert cli("run", runs[0]["path"] / "recipe.yaml", "--runs-dir", "again").code == 0
    (again,) = trial_runs(tmp_path / "again")
    assert "sweep" not in again["info"] and again["recipe"] == runs[0]["recipe"]


def min_val_loss(run: Path) -> float:
    lines = (run / "metrics.csv").read_text().splitlines()
    column = lines[0].split(",").index("val_loss")
    return min(float(line.split(",")[column]) for line in lines[1:])


@pytest.mark.parametrize("method", ["random", {"name": "bayes", "n_startup_trials": 2}])
def test_random_and_bayes_respect_ranges_and_log_scales(cli, tmp_path, method):
    params = {"optimizer.lr": {"low": 1.0e-4, "high": 1.0e-1, "log": True},
              "data.batch_size": {"low": 16, "high": 64, "step": 16},
              "model.dropout": {"low": 0.0, "high": 0.5}}
    recipe = write_recipe(tmp_path / "s.yaml", sweep_doc(method=method, trials=8, params=params))
    assert cli("sweep", recipe).code == 0
    runs = trial_runs(tmp_path / "runs")
    assert len(runs) == 8
    lrs = [r["recipe"]["optimizer"]["lr"] for r in runs]
    assert all(1.0e-4 <= lr <= 1.0e-1 for lr in lrs)
    assert all(r["recipe"]["data"]["batch_size"] in (16, 32, 48, 64) for r in runs)
    assert all(0.0 <= r["recipe"]["model"]["dropout"] <= 0.5 for r in runs)
    name = "tiny-random" if method == "random" else "tiny-bayes"
    study = load_study(tmp_path / "runs", name)
    for trial in study.trials:
        lr, batch = trial.distributions["optimizer.lr"], trial.distributions["data.batch_size"]
        assert isinstance(lr, optuna.distributions.FloatDistribution) and lr.log and (lr.low, lr.high) == (1e-4, 0.1)
        assert isinstance(batch, optuna.distributions.IntDistribution) and batch.step == 16
    if method == "random":
        # log-uniform on [1e-4, 1e-1] puts 2/3 of the draws below 1e-2; uniform would put 9% there
        assert sum(lr < 1.0e-2 for lr in lrs) >= 4, lrs


def test_hyperband_prunes_and_uses_fewer_epochs_than_the_same_sweep_unpruned(cli, tmp_path):
    doc = sweep_doc(epochs=4, method="random", trials=6,
                    params={"optimizer.lr": {"low": 1.0e-4, "high": 0.3, "log": True}})
    recipe = write_recipe(tmp_path / "s.yaml", doc)
    assert cli("sweep", recipe, "sweep.name=plain", "--runs-dir", "plain").code == 0
    result = cli("sweep", recipe, "sweep.name=hb", "sweep.pruner=hyperband", "--runs-dir", "hb")
    assert result.code == 0, result.err
    plain, hb = trial_runs(tmp_path / "plain"), trial_runs(tmp_path / "hb")
    by_trial = lambda runs: {r["info"]["sweep"]["trial"]: r for r in runs}  # noqa: E731
    plain, hb = by_trial(plain), by_trial(hb)
    # the same configurations were tried (same sampler stream): the comparison is fair
    assert {t: r["recipe"]["optimizer"]["lr"] for t, r in plain.items()} == \
           {t: r["recipe"]["optimizer"]["lr"] for t, r in hb.items()}
    epochs = lambda runs: sum(r["summary"]["epochs"] for r in runs.values())  # noqa: E731
    pruned = [r for r in hb.values() if r["info"]["status"] == "pruned"]
    assert pruned and epochs(hb) < epochs(plain) == 6 * 4, (epochs(hb), epochs(plain))
    for run in pruned:  # a pruned trial keeps its partial record
        assert "pruned by the hyperband pruner" in run["info"]["stop_reason"]
        rows = (run["path"] / "metrics.csv").read_text().splitlines()[1:]
        assert len(rows) == run["summary"]["epochs"] < 4
        assert (run["path"] / "checkpoints" / "last.pt").is_file()
    states = {t.number: t.state for t in load_study(tmp_path / "hb", "hb").trials}
    assert {n for n, s in states.items() if s == TrialState.PRUNED} == \
           {r["info"]["sweep"]["trial"] for r in pruned}
    assert f"epochs trained: {epochs(hb)} of 24" in result.out


def test_two_workers_on_one_sqlite_study_finish_every_trial_exactly_once(cli, tmp_path):
    lrs = [0.001, 0.01, 0.1, 0.3]
    recipe = write_recipe(tmp_path / "s.yaml", sweep_doc(epochs=1, method="grid", workers=2,
                                                         params={"optimizer.lr": lrs}))
    assert cli("sweep", recipe).code == 0
    runs = trial_runs(tmp_path / "runs")
    assert sorted(r["recipe"]["optimizer"]["lr"] for r in runs) == lrs
    assert sorted(r["info"]["sweep"]["trial"] for r in runs) == list(range(4))
    assert os.getpid() not in {r["info"]["pid"] for r in runs}  # trained in the worker processes
    trials = load_study(tmp_path / "runs", "tiny-grid").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4


def test_rerun_continues_the_sweep_and_a_changed_search_space_is_refused(cli, tmp_path):
    params = {"optimizer.lr": {"low": 1.0e-3, "high": 1.0e-1, "log": True}}
    recipe = write_recipe(tmp_path / "s.yaml", sweep_doc(method="random", trials=2, params=params))
    assert cli("sweep", recipe).code == 0
    first = {r["path"] for r in trial_runs(tmp_path / "runs")}
    result = cli("sweep", recipe, "sweep.trials=3")
    assert result.code == 0 and "continuing, 1 trial planned now" in result.out
    runs = trial_runs(tmp_path / "runs")
    assert len(runs) == 3 and first < {r["path"] for r in runs}  # the first two were kept, not re-run
    assert sorted(r["info"]["sweep"]["trial"] for r in runs) == [0, 1, 2]
    assert "continuing, 0 trials planned now" in cli("sweep", recipe, "sweep.trials=3").out

    changed = write_recipe(tmp_path / "changed.yaml", sweep_doc(method="random", trials=3, params={
        "optimizer.lr": {"low": 1.0e-4, "high": 1.0e-1, "log": True}}))
    result = cli("sweep", changed)
    assert result.code == 2
    assert "different search space: params.optimizer.lr" in result.err and "sweep.name" in result.err
    result = cli("sweep", recipe, "sweep.trials=3", "train.epochs=2")
    assert result.code == 2 and "different recipe (outside `sweep`): train.epochs: 1 -> 2" in result.err
    assert len(trial_runs(tmp_path / "runs")) == 3


def test_seeds_run_each_configuration_n_times_and_the_sampler_sees_the_mean(cli, tmp_path):
    recipe = write_recipe(tmp_path / "s.yaml", sweep_doc(epochs=2, method="grid", seeds=2,
                                                         params={"optimizer.lr": [0.01, 0.1]}))
    result = cli("sweep", recipe)
    assert result.code == 0 and "(mean +- std)" in result.out
    runs = trial_runs(tmp_path / "runs")
    study = load_study(tmp_path / "runs", "tiny-grid")
    for trial in study.trials:
        mine = [r for r in runs if r["info"]["sweep"]["trial"] == trial.number]
        assert sorted(r["recipe"]["seed"] for r in mine) == [0, 1]
        assert {r["recipe"]["optimizer"]["lr"] for r in mine} == {trial.params["optimizer.lr"]}
        assert math.isclose(trial.value, sum(min_val_loss(r["path"]) for r in mine) / 2, rel_tol=1e-9)


def test_a_failed_trial_is_recorded_and_the_sweep_goes_on(cli, tmp_path):
    # mse on a classification task passes the recipe check (it is a valid loss) but fails when built
    recipe = write_recipe(tmp_path / "s.yaml", sweep_doc(method="grid", params={"loss": ["mse", "cross_entropy"]}))
    result = cli("sweep", recipe)
    assert result.code == 0, result.err
    states = [t.state for t in load_study(tmp_path / "runs", "tiny-grid").trials]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]
    assert "trial 0 failed" in result.out and "`mse` is a regression loss" in result.out
    assert [r["recipe"]["loss"]["name"] for r in trial_runs(tmp_path / "runs")] == ["cross_entropy"]


def test_an_interrupted_sweep_exits_130_and_a_rerun_finishes_the_interrupted_trial(cli, tmp_path, monkeypatch):
    from dltrain.sweep.trial import OptunaReport

    original = OptunaReport.on_epoch_end

    def ctrl_c_in_trial_1(self, state, logs):  # as if Ctrl-C arrived during trial 1's first epoch
        if self.trial.number == 1:
            raise KeyboardInterrupt
        original(self, state, logs)

    recipe = write_recipe(tmp_path / "s.yaml", sweep_doc(method="grid", params={"optimizer.lr": [0.01, 0.1, 0.3]}))
    monkeypatch.setattr(OptunaReport, "on_epoch_end", ctrl_c_in_trial_1)
    result = cli("sweep", recipe)
    assert result.code == 130 and "trial 1: interrupted" in result.out
    statuses = {r["info"]["sweep"]["trial"]: r["info"]["status"] for r in trial_runs(tmp_path / "runs")}
    assert statuses == {0: "completed", 1: "interrupted"}  # trial 2 never started
    monkeypatch.setattr(OptunaReport, "on_epoch_end", original)
    result = cli("sweep", recipe)
    assert result.code == 0 and "continuing, 1 trial planned now, 2 waiting" in result.out
    study = load_study(tmp_path / "runs", "tiny-grid")
    done = sorted(t.params["optimizer.lr"] for t in study.trials if t.state == TrialState.COMPLETE)
    assert done == [0.01, 0.1, 0.3]  # the interrupted grid point was run again, the others once
