"""Seeds trained side by side (runner/stacked.py): each member is the run its seed trains alone."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pytest
import torch

from tests.conftest import run_dirs, tiny_recipe, write_recipe

STACKABLE = {"log": {"diagnostics": False, "tensorboard": False, "progress": "none"}}


def rows(run) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def by_seed(root) -> dict:
    return {json.loads((d / "run.json").read_text())["seed"]: d for d in run_dirs(root)}


def assert_same_curves(a, b, keys=("train_loss", "val_loss", "val_accuracy", "grad_norm")) -> None:
    ra, rb = rows(a), rows(b)
    assert [r["epoch"] for r in ra] == [r["epoch"] for r in rb]
    for x, y in zip(ra, rb):
        for key in keys:
            if x[key] == "" or y[key] == "":  # grad_norm: measured at log points only
                assert x[key] == y[key], (key, x, y)
                continue
            assert math.isclose(float(x[key]), float(y[key]), rel_tol=1e-5, abs_tol=1e-7), (key, x, y)


# Batch norm with Adam is left out on purpose: the gradient of a bias just before batch norm is
# rounding noise (the norm removes it), and Adam scales noise up to steps of size lr, so that bias
# (and the running mean) differs from the lone run's by more than rounding (docs/compare.md).
MOONS = {"name": "moons", "n_samples": 200, "batch_size": 32}
FRIEDMAN = {"name": "friedman", "n_samples": 200, "batch_size": 32}


@pytest.mark.parametrize("norm, optimizer, data, metric", [
    ("batch", {"name": "momentum", "lr": 0.05}, MOONS, "val_accuracy"),
    ("layer", {"name": "adam", "lr": 0.01}, MOONS, "val_accuracy"),
    ("none", {"name": "rmsprop", "lr": 0.01}, FRIEDMAN, "val_rmse")])
def test_each_member_equals_its_seed_trained_alone(cli, tmp_path, norm, optimizer, data, metric):
    """Norm layers, residual blocks, a projection shortcut, classification and regression: epoch by
    epoch, each member's losses are the lone run's to float rounding, and its test metrics too."""
    model = {"arch": "mlp", "hidden": [16, 12], "norm": norm, "residual": True}
    write_recipe(tmp_path / "r.yaml", tiny_recipe(model=model, optimizer=optimizer, data=data, **STACKABLE,
                                                  train={"epochs": 4}))
    assert cli("run", "r.yaml", "--seeds", "3", "--runs-dir", "stacked").code == 0
    assert cli("run", "r.yaml", "--seeds", "3", "--stack", "1", "--runs-dir", "alone").code == 0
    stacked, alone = by_seed(tmp_path / "stacked"), by_seed(tmp_path / "alone")
    assert sorted(stacked) == sorted(alone) == [0, 1, 2]
    for seed in stacked:
        info = json.loads((stacked[seed] / "run.json").read_text())
        assert info["stacked"]["members"] == 3 and "stacked" not in json.loads((alone[seed] / "run.json").read_text())
        assert_same_curves(stacked[seed], alone[seed], keys=("train_loss", "val_loss", metric, "grad_norm"))
        test_s = json.loads((stacked[seed] / "summary.json").read_text())["test"]
        test_a = json.loads((alone[seed] / "summary.json").read_text())["test"]
        assert math.isclose(test_s["test_loss"], test_a["test_loss"], rel_tol=1e-5)
    # the members really differ from one another: they are three seeds, not one copied
    assert rows(stacked[0])[-1]["train_loss"] != rows(stacked[1])[-1]["train_loss"]


def test_member_checkpoint_is_a_lone_runs_and_resumes_alone(cli, tmp_path):
    """A member's checkpoint has the lone run's parameter names and optimizer state; `dltrain resume`
    continues a member from its epoch-3 checkpoint, alone, to the stacked run's epoch 4 (dropout
    included: each member's masks come from its own generator, saved in its checkpoint)."""
    # a checkpoint at every epoch's end: previous.pt is then epoch 3's
    recipe = tiny_recipe(model={"arch": "mlp", "hidden": [16], "dropout": 0.2}, **STACKABLE,
                         train={"epochs": 4, "checkpoint_interval": 0})
    write_recipe(tmp_path / "r.yaml", recipe)
    assert cli("run", "r.yaml", "--seeds", "2", "--runs-dir", "stacked").code == 0
    assert cli("run", "r.yaml", "--seeds", "2", "--stack", "1", "--runs-dir", "alone").code == 0
    member, lone = by_seed(tmp_path / "stacked")[1], by_seed(tmp_path / "alone")[1]
    assert_same_curves(member, lone)  # on the CPU the dropout masks are the lone run's
    mine = torch.load(member / "checkpoints" / "last.pt", weights_only=True)["learner"]
    theirs = torch.load(lone / "checkpoints" / "last.pt", weights_only=True)["learner"]
    assert mine["model"].keys() == theirs["model"].keys()
    for name, value in theirs["model"].items():
        assert torch.allclose(mine["model"][name], value, atol=1e-6), name
    for i, state in theirs["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.allclose(mine["optimizer"]["state"][i][key], value, atol=1e-6), (i, key)
    assert cli("show", str(member)).code == 0

    last_row = rows(member)[-1]
    shutil.copy(member / "checkpoints" / "previous.pt", member / "checkpoints" / "last.pt")  # epoch 3's
    info = json.loads((member / "run.json").read_text())
    (member / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    assert cli("resume", str(member)).code == 0
    resumed = rows(member)
    assert len(resumed) == 4
    for key in ("train_loss", "val_loss"):
        assert math.isclose(float(resumed[-1][key]), float(last_row[key]), rel_tol=1e-5), key


def test_one_member_diverges_the_others_go_on(tmp_path, monkeypatch):
    """A member whose loss turns non-finite ends `diverged` at its step; the others complete, each
    still equal to its lone run."""
    from dltrain.builder.objects import load_checked
    from dltrain.core.status import RunStatus
    from dltrain.runner import stacked as runner
    from dltrain.train import stacked as loop

    write_recipe(tmp_path / "r.yaml", tiny_recipe(**STACKABLE, train={"epochs": 3}))
    base = load_checked(tmp_path / "r.yaml")
    recipes = [base.model_copy(update={"seed": s}) for s in range(3)]
    original = loop.MemberLosses.__call__
    calls = {"n": 0}

    def poisoned(self, output, target):
        losses = original(self, output, target)
        if torch.is_grad_enabled():  # training batches, not validation
            calls["n"] += 1
            if calls["n"] >= 8:  # member 1 from its 8th batch on
                losses = losses * torch.tensor([1.0, float("nan"), 1.0])
        return losses

    monkeypatch.setattr(loop.MemberLosses, "__call__", poisoned)
    results = runner.execute_group(recipes, tmp_path / "runs", argv=["test"])
    assert [r.status for r in results] == [RunStatus.COMPLETED, RunStatus.DIVERGED, RunStatus.COMPLETED]
    assert "step 8" in results[1].reason or "step 10" in results[1].reason  # the log point that saw it
    monkeypatch.setattr(loop.MemberLosses, "__call__", original)
    from dltrain.runner.execute import execute
    alone = execute(recipes[2], tmp_path / "alone", argv=["test"])
    assert_same_curves(results[2].run.path, alone.run.path)


def test_early_stopping_is_per_member(cli, tmp_path):
    """Each member stops where its lone run stops; members of one group stop at different epochs."""
    recipe = tiny_recipe(**STACKABLE, optimizer={"name": "sgd", "lr": 0.5},
                         train={"epochs": 30, "early_stopping": {"monitor": "val_loss", "patience": 1}})
    write_recipe(tmp_path / "r.yaml", recipe)
    assert cli("run", "r.yaml", "--seeds", "4", "--runs-dir", "stacked").code == 0
    assert cli("run", "r.yaml", "--seeds", "4", "--stack", "1", "--runs-dir", "alone").code == 0
    stacked, alone = by_seed(tmp_path / "stacked"), by_seed(tmp_path / "alone")
    for seed in stacked:
        assert_same_curves(stacked[seed], alone[seed], keys=("train_loss", "val_loss"))
        assert json.loads((stacked[seed] / "summary.json").read_text())["status"] == "early_stopped"
    assert len({len(rows(d)) for d in stacked.values()}) > 1


def test_groups_follow_the_seed_and_the_limit():
    from dltrain.recipe.load import validate_document
    from dltrain.runner.stacked import groups

    def recipe(seed, **changes):
        doc = tiny_recipe(**{**STACKABLE, **changes})
        return validate_document({**doc, "seed": seed})

    mlp = [recipe(s) for s in range(5)]
    other_lr = [recipe(s, optimizer={"name": "adam", "lr": 0.1}) for s in range(2)]
    cnn = recipe(0, data={"name": "digits"}, model={"arch": "cnn"})
    diagnosed = recipe(0, log={"diagnostics": True})
    planned = groups([*mlp, *other_lr, cnn, diagnosed], limit=4)
    assert [len(g) for g, _ in planned] == [4, 1, 2, 1, 1]
    assert [why is None for _, why in planned] == [True, True, True, False, False]
    assert "cnn" in planned[3][1] and "log.diagnostics" in planned[4][1]
    assert all(why == "--stack 1" for _, why in groups(mlp, limit=1))


def test_a_recipe_that_cannot_stack_says_why_in_one_line(cli, tmp_path):
    write_recipe(tmp_path / "r.yaml", tiny_recipe(train={"epochs": 1}, log={"progress": "none", "tensorboard": False}))
    result = cli("run", "r.yaml", "--seeds", "2")
    assert result.code == 0
    assert result.out.count("trained one after another: log.diagnostics is on") == 1
    assert len(run_dirs(tmp_path / "runs")) == 2


def test_a_stop_signal_checkpoints_every_member_and_each_resumes_alone(cli, tmp_path, monkeypatch):
    """SIGINT mid-epoch: every member checkpoints the step under way and ends `interrupted` (exit
    130); `dltrain resume` then finishes a member alone, to the metrics of its seed's lone run."""
    import os
    import signal

    from dltrain.train import stacked as loop

    write_recipe(tmp_path / "r.yaml", tiny_recipe(**STACKABLE, train={"epochs": 4}))
    assert cli("run", "r.yaml", "--seeds", "2", "--stack", "1", "--runs-dir", "alone").code == 0
    original = loop.MemberLosses.__call__
    calls = {"n": 0}

    def interrupting(self, output, target):
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == 7:  # epoch 2, step 7
                os.kill(os.getpid(), signal.SIGINT)
        return original(self, output, target)

    monkeypatch.setattr(loop.MemberLosses, "__call__", interrupting)
    assert cli("run", "r.yaml", "--seeds", "2", "--runs-dir", "stacked").code == 130
    monkeypatch.setattr(loop.MemberLosses, "__call__", original)
    stacked, alone = by_seed(tmp_path / "stacked"), by_seed(tmp_path / "alone")
    for seed, member in stacked.items():
        info = json.loads((member / "run.json").read_text())
        assert info["status"] == "interrupted" and "SIGINT" in info["stop_reason"]
        assert torch.load(member / "checkpoints" / "last.pt", weights_only=True)["step"] == 7
    member = stacked[1]
    assert cli("resume", str(member)).code == 0
    assert json.loads((member / "run.json").read_text())["status"] == "completed"
    assert_same_curves(member, alone[1], keys=("train_loss", "train_accuracy", "val_loss"))
