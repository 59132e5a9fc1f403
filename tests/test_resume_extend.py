"""`dltrain resume RUN train.epochs=N`: a finished run extended to N epochs ends exactly as a run
planned for N epochs from the start; the run directory records the change; any other override is
refused (exit 2, naming the key, nothing written)."""

from __future__ import annotations

import json

import pytest

from conftest import run_dirs, tiny_recipe, write_recipe
from reliability_tools import assert_same_run, dltrain, metric_rows, one_torch_thread, status  # noqa: F401

TRAIN = {"deterministic": True}
LOG = {"tensorboard": False}


def _run(cli, tmp_path, name: str, **train):
    recipe = write_recipe(tmp_path / f"{name}.yaml", tiny_recipe(name=name, train={**TRAIN, **train}, log=LOG))
    result = cli("run", recipe, "--runs-dir", tmp_path / "runs")
    assert result.code == 0, result.err
    return next(p for p in run_dirs(tmp_path / "runs") if p.name.startswith(name))


def test_a_completed_run_extended_ends_as_the_run_planned_that_long(cli, tmp_path):
    reference = _run(cli, tmp_path, "five", epochs=5)
    run = _run(cli, tmp_path, "three", epochs=3)
    assert status(run)["status"] == "completed"

    result = cli("resume", run, "train.epochs=5")
    assert result.code == 0, result.err
    assert "extending it to 5 epochs (planned: 3)" in result.out
    assert_same_run(run, reference)
    assert json.loads((run / "summary.json").read_text())["epochs"] == 5
    assert "epochs: 5" in (run / "recipe.yaml").read_text()
    entry = status(run)["resumed"][-1]
    assert (entry["epoch"], entry["epochs_from"], entry["epochs_to"]) == (3, 3, 5)
    assert entry["command"] == ["dltrain", "resume", str(run), "train.epochs=5"]


def test_run_json_records_the_dltrain_command_not_the_callers_argv(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(train={"epochs": 1}, log=LOG))
    assert cli("run", recipe, "--runs-dir", tmp_path / "runs", "optimizer.lr=0.02").code == 0
    (run,) = run_dirs(tmp_path / "runs")
    assert status(run)["command"] == ["dltrain", "run", str(recipe), "--runs-dir", str(tmp_path / "runs"),
                                      "optimizer.lr=0.02"]


def test_an_early_stopped_run_extended_gets_its_patience_afresh(cli, tmp_path):
    # min_delta no epoch can reach: the best stays epoch 1, so patience 2 stops it at epoch 3
    stopping = {"monitor": "val_loss", "patience": 2, "min_delta": 100.0}
    run = _run(cli, tmp_path, "stops", epochs=20, early_stopping=stopping)
    assert (status(run)["status"], json.loads((run / "summary.json").read_text())["epochs"]) == ("early_stopped", 3)

    result = cli("resume", run, "train.epochs=30")
    assert result.code == 0, result.err
    assert status(run)["status"] == "early_stopped"
    # two more epochs without improvement, not one: the counter started again at 0
    assert json.loads((run / "summary.json").read_text())["epochs"] == 5
    assert len(metric_rows(run)) == 1 + 5


@pytest.fixture
def finished(cli, tmp_path):
    return _run(cli, tmp_path, "done", epochs=2)


@pytest.mark.parametrize("args, key", [
    (["model.hidden=[8]"], "model.hidden"),
    (["train.epochs=4", "optimizer.lr=0.5"], "optimizer.lr"),
    (["train.epochs=2"], "train.epochs"),  # not more than it has trained
    (["train.epochs=0"], "train.epochs"),
    ([], "train.epochs=N"),  # a completed run without an extension: the hint says how
])
def test_resume_refuses_what_would_change_the_trained_run(cli, finished, args, key):
    before = {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()}
    result = cli("resume", finished, *args)
    assert result.code == 2, result.out + result.err
    assert key in result.err and "Traceback" not in result.err
    assert {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()} == before
