"""Diagnostics on a time budget (log.diagnostics_budget): optional readings wait until they fit in
the share of training time; the initialization probe, epochs 1 and 2 and the end are always kept.
And the histograms of an exploding run's huge, all-equal values no longer fail the run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_dirs, tiny_recipe, write_recipe
from torch import nn

from dltrain.features import diagnostics
from dltrain.features.diagnostics import Budget, histogram_edges


class Clock:
    """A perf_counter that moves only when told to."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def monotonic(self):
        return self.now


def test_optional_work_waits_until_its_last_cost_fits_in_the_share_of_training_time(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(diagnostics, "time", clock)
    budget = Budget(0.03)
    with budget.timed("probe"):
        clock.now += 0.02  # a probe pass of 20 ms
    clock.now += 1.0  # 1 s of training: 30 ms allowed, 20 spent, the next probe would make 40
    assert not budget.allows("probe")
    clock.now += 0.5  # 1.5 s of training: 45 ms allowed
    assert budget.allows("probe")
    assert budget.report() == {"seconds": 0.02, "training_seconds": 1.5, "share": 0.03, "skipped": {"probe": 1}}


def test_a_tiny_budget_keeps_the_init_probe_the_first_epochs_and_the_end(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(
        train={"epochs": 9}, log={"diagnostics_every": 1, "diagnostics_budget": 1e-9}))
    assert cli("run", recipe).code == 0
    (run,) = run_dirs(tmp_path / "runs")
    rows = [json.loads(line) for line in (run / "diagnostics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["epoch"]) for r in rows] == [("init", 0), ("epoch", 1), ("epoch", 2), ("end", 9)]
    cost = json.loads((run / "run.json").read_text())["diagnostics_cost"]
    assert cost["skipped"]["probe"] == 2  # epochs 4 and 8
    assert cost["skipped"]["step"] >= 40  # a reading was asked for at every one of ~50 steps
    assert 0 < cost["seconds"] and 0 < cost["training_seconds"]


def test_the_default_budget_records_what_diagnostics_cost(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(train={"epochs": 2}))
    assert cli("run", recipe).code == 0
    (run,) = run_dirs(tmp_path / "runs")
    cost = json.loads((run / "run.json").read_text())["diagnostics_cost"]
    assert cost["share"] == 0.03 and cost["seconds"] > 0


@pytest.mark.parametrize("values", [np.full(5, 1e17), np.full(1, 3e15, np.float32), np.array([1e30, 1e30 * (1 + 1e-9)]),
                                    np.zeros(3), np.array([-3e38, 3e38], np.float32)])
def test_histogram_edges_bin_values_numpy_cannot_bin_by_itself(values):
    edges = histogram_edges(values, 64)
    counts, _ = np.histogram(values, bins=edges)
    assert counts.sum() == values.size and len(edges) == 65


def test_histogram_edges_of_non_finite_values_are_none():
    assert histogram_edges(np.array([1.0, np.inf]), 64) is None
    assert histogram_edges(np.array([np.nan]), 64) is None


def test_an_exploding_regression_records_its_histograms_instead_of_failing(tmp_path):
    """A regression head whose bias an exploding learning rate has carried to 1e15: one weight,
    one gradient, all outputs equal; numpy's own bins for them fail ("Too many bins for data
    range") and, before the guard, ended the run `failed` from a histogram."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dltrain.components.schedules import LRSchedule, constant
    from dltrain.data.loader import ArrayLoader
    from dltrain.features.diagnostics import Diagnostics
    from dltrain.rundir.layout import DIAGNOSTICS_EVENTS
    from dltrain.rundir.writer import RunDir
    from dltrain.train.events import FitState
    from dltrain.train.loop import Learner, fit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 1))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(1e15)
    with pytest.raises(ValueError, match="Too many bins"):  # what numpy does with them alone
        np.histogram(model[0].bias.detach().numpy().astype(np.float64), bins=64)
    optimizer = torch.optim.SGD(model.parameters(), lr=10.0)  # far past the stability limit
    learner = Learner(model, nn.MSELoss(), optimizer, LRSchedule(optimizer, constant(1), warmup_epochs=0,
                                                                 steps_per_epoch=1), task="regression", log_every=1)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    run = RunDir(tmp_path)
    state = FitState(learner=learner, epochs=2, callbacks=[Diagnostics(run, (x, y), every=1, budget=1e9)])
    fit(learner, ArrayLoader(x, y, 16, shuffle=False), None, state)
    assert state.stop.status in ("completed", "diverged")
    tags = EventAccumulator(str(tmp_path / DIAGNOSTICS_EVENTS), size_guidance={"histograms": 0}).Reload().Tags()
    assert {"weights/0.bias", "gradients/0.bias"} <= set(tags["histograms"])
