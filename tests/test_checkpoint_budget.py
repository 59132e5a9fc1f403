"""Checkpoints on a time budget (train.checkpoint_interval): last.pt at the first epoch end or step
after the interval, always at the run's end; best.pt's weights kept in memory until the next one."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_dirs, tiny_recipe, write_recipe

from dltrain.rundir.writer import RunDir


@pytest.fixture
def saves(monkeypatch) -> list[tuple[str, dict]]:
    """Every checkpoint a run hands to its writer: (file name, content)."""
    calls = []
    real = RunDir.save_checkpoint

    def recording(self, name, state, previous=None, **kwargs):
        calls.append((name, state))
        return real(self, name, state, previous, **kwargs)

    monkeypatch.setattr(RunDir, "save_checkpoint", recording)
    return calls


def last_saves(saves) -> list[dict]:
    return [state for name, state in saves if name == "last.pt"]


def test_a_run_shorter_than_the_interval_writes_one_checkpoint_at_its_end(cli, tmp_path, saves):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(train={"epochs": 4}))  # the default: 60 s
    assert cli("run", recipe).code == 0
    assert [(s["epoch"], s["progress"]) for s in last_saves(saves)] == [(4, None)]
    (run,) = run_dirs(tmp_path / "runs")
    assert torch.load(run / "checkpoints/last.pt", weights_only=True)["epoch"] == 4


def test_an_interval_of_0_writes_a_checkpoint_at_every_epochs_end(cli, tmp_path, saves):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(train={"epochs": 4, "checkpoint_interval": 0}))
    assert cli("run", recipe).code == 0
    assert [s["epoch"] for s in last_saves(saves)] == [1, 2, 3, 4]


def test_a_checkpoint_follows_the_first_step_after_each_interval(cli, tmp_path, saves, monkeypatch):
    """A clock that advances 1 s per optimizer step, an interval of 2.5 s: a checkpoint every 3rd
    step, mid-epoch or at an epoch's end, so a kill loses at most one interval of training."""
    from dltrain.train import events
    from dltrain.train.loop import Learner

    clock = {"now": 0.0}

    class Clock:
        @staticmethod
        def monotonic():
            return clock["now"]

    real_step = Learner.optimizer_step

    def stepping(self, measure_norm=False):
        clock["now"] += 1.0
        return real_step(self, measure_norm)

    monkeypatch.setattr(events, "time", Clock)
    monkeypatch.setattr(Learner, "optimizer_step", stepping)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(train={"epochs": 4, "checkpoint_interval": 2.5}))
    assert cli("run", recipe).code == 0
    written = last_saves(saves)
    steps = [s["step"] for s in written]
    total = written[-1]["step"]
    assert written[-1]["epoch"] == 4 and written[-1]["progress"] is None  # the final one
    assert steps[:-1] == list(range(3, total, 3))  # every 3rd step (the last one: at the end)
    assert any(s["progress"] is not None for s in written)  # mid-epoch ones among them
    (run,) = run_dirs(tmp_path / "runs")
    assert json.loads((run / "summary.json").read_text())["steps"] == total


def test_best_weights_reach_best_pt_with_the_next_checkpoint(cli, tmp_path, saves):
    """Early stopping with patience 1: the best epoch is never the last, so its weights wait in
    memory; best.pt then holds exactly what a checkpoint at every epoch wrote at that epoch."""
    stopping = {"patience": 1, "min_delta": 0.01, "restore_best": False}
    runs = {}
    for interval in (0, 60):
        recipe = write_recipe(tmp_path / f"r{interval}.yaml", tiny_recipe(
            train={"epochs": 60, "checkpoint_interval": interval, "early_stopping": stopping}))
        assert cli("run", recipe, "--runs-dir", tmp_path / f"runs{interval}").code == 0
        (runs[interval],) = run_dirs(tmp_path / f"runs{interval}")
    summary = json.loads((runs[60] / "summary.json").read_text())
    assert summary["status"] == "early_stopped" and summary["best_epoch"] < summary["epochs"]
    assert [s["epoch"] for s in last_saves(saves)][-1:] == [summary["epochs"]]  # the 60 s run: one, at the end
    best, reference = (torch.load(r / "checkpoints/best.pt", weights_only=True) for r in (runs[60], runs[0]))
    assert best["epoch"] == reference["epoch"] == summary["best_epoch"]
    for key, weights in reference["learner"]["model"].items():
        assert torch.equal(best["learner"]["model"][key], weights), key


def test_a_run_that_diverges_inside_the_interval_still_writes_its_best_weights(cli, tmp_path):
    # the warm-up carries the learning rate past the stability limit in epoch 3: no checkpoint was due
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(
        data={"name": "friedman", "n_samples": 200, "batch_size": 16, "normalize_target": False},  # raw scale diverges
        model={"arch": "mlp", "hidden": [16], "activation": "identity"},
        optimizer={"name": "sgd", "lr": 0.12}, schedule={"name": "constant", "warmup_epochs": 4},
        train={"epochs": 8}, log={"tensorboard": False}))
    assert cli("run", recipe).code == 3
    (run,) = run_dirs(tmp_path / "runs")
    assert not (run / "checkpoints/last.pt").exists()  # nothing non-finite, and no interval had passed
    best = torch.load(run / "checkpoints/best.pt", weights_only=True)
    assert best["epoch"] == json.loads((run / "summary.json").read_text())["best_epoch"] <= 2
    assert all(torch.isfinite(t).all() for t in best["learner"]["model"].values())
