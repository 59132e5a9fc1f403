"""Transfer learning: `model.from`, `freeze`, `reset_head`, with data.classes and data.limit making task B."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_dirs, write_recipe
from dltrain.recipe.load import load_recipe
from dltrain.rundir.writer import load_checkpoint

BODY = {"arch": "cnn", "channels": [4], "hidden": [6], "norm": "batch"}


def digits_recipe(classes, model, **extra):
    doc = {"name": "t", "seed": 0, "device": "cpu",
           "data": {"name": "digits", "as_images": True, "classes": classes, "batch_size": 32},
           "model": model, "optimizer": {"name": "adam", "lr": 0.01}, "train": {"epochs": 2},
           "log": {"tensorboard": False}}
    doc["data"].update(extra)
    return doc


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """Model A: the CNN trained on digits 0-7 (module-scoped: trained once for these tests)."""
    from dltrain.runner.execute import execute
    root = tmp_path_factory.mktemp("a")
    recipe = write_recipe(root / "a.yaml", {**digits_recipe(list(range(8)), BODY, limit=300), "name": "digits-a"})
    result = execute(load_recipe(recipe), root / "runs", argv=["test"])
    assert result.status == "completed", result.reason
    return result.run.path


def task_b(source, **model):
    return digits_recipe([8, 9], {**BODY, "from": str(source), **model}, limit=100)


def model_state(run) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.pt")["learner"]["model"]


def test_frozen_parameters_are_bit_identical_after_training_and_the_new_head_trains(cli, tmp_path, source_run):
    from dltrain.builder.objects import build
    recipe = write_recipe(tmp_path / "b.yaml", task_b(source_run, freeze="all_but_head", reset_head=True))
    initial_head = build(load_recipe(recipe)).model.head.weight.detach().clone()
    result = cli("run", recipe)
    assert result.code == 0, result.err
    (run,) = run_dirs(tmp_path / "runs")
    source = load_checkpoint(source_run / "checkpoints" / "best.pt")["learner"]["model"]
    trained = model_state(run)
    body = [k for k in trained if not k.startswith("head.")]
    assert "features.1.running_mean" in body  # frozen batch norm keeps its statistics too
    for key in body:
        assert torch.equal(trained[key], source[key]), key
    assert trained["head.weight"].shape == (2, 6)
    assert not torch.equal(trained["head.weight"], initial_head)
    info = json.loads((run / "run.json").read_text())
    transfer = info["transfer"]
    assert transfer["from"] == str(source_run / "checkpoints" / "best.pt")
    assert transfer["head"] == "head" and transfer["reset_head"] == ["head.bias", "head.weight"]
    assert "features.0.weight" in transfer["loaded"] and "head.weight" not in transfer["loaded"]
    assert set(transfer["frozen"]) == {n for n in body if not n.split(".")[-1].startswith(("running", "num_batches"))}
    assert transfer["trainable_parameters"] == 6 * 2 + 2
    assert info["data"]["train"] == 100


def test_freeze_globs_freeze_only_matching_parameters(cli, tmp_path, source_run):
    recipe = write_recipe(tmp_path / "b.yaml", task_b(source_run, freeze=["features.0.*"], reset_head=True))
    result = cli("run", recipe)
    assert result.code == 0, result.err
    (run,) = run_dirs(tmp_path / "runs")
    transfer = json.loads((run / "run.json").read_text())["transfer"]
    assert transfer["frozen"] == ["features.0.bias", "features.0.weight"]
    trained = model_state(run)
    source = load_checkpoint(source_run / "checkpoints" / "best.pt")["learner"]["model"]
    assert torch.equal(trained["features.0.weight"], source["features.0.weight"])
    assert not torch.equal(trained["dense.1.weight"], source["dense.1.weight"])  # not frozen: it trained


def test_a_run_name_prefix_loads_the_newest_run(cli, tmp_path, source_run):
    prefix = source_run.parent / "digits-a"
    recipe = write_recipe(tmp_path / "b.yaml", {**task_b(prefix, reset_head=True), "train": {"epochs": 1}})
    result = cli("run", recipe)
    assert result.code == 0, result.err
    (run,) = run_dirs(tmp_path / "runs")
    assert json.loads((run / "run.json").read_text())["transfer"]["from"].startswith(str(source_run))


@pytest.mark.parametrize("model,message", [
    ({"channels": [8]}, "features.0.weight: checkpoint [4, 1, 3, 3], model [8, 1, 3, 3]"),
    ({}, "head.weight: checkpoint [8, 6], model [2, 6]; head.bias: checkpoint [8], model [2] "
         "(only the head `head` differs: set model.reset_head: true"),
    ({"hidden": [6, 6]}, "dense.4.weight is missing from the checkpoint"),
])
def test_checkpoint_that_does_not_fit_names_the_parameters(cli, tmp_path, source_run, model, message):
    recipe = write_recipe(tmp_path / "b.yaml", task_b(source_run, **model))
    result = cli("run", recipe)
    assert result.code == 2, result.err
    assert message in result.err and "Traceback" not in result.err
    assert run_dirs(tmp_path / "runs") == []


def test_freeze_glob_that_matches_nothing_lists_the_parameters(cli, tmp_path, source_run):
    recipe = write_recipe(tmp_path / "b.yaml", task_b(source_run, reset_head=True, freeze=["feature.*"]))
    result = cli("run", recipe)
    assert result.code == 2 and "model.freeze" in result.err
    assert "`feature.*` matches no parameter" in result.err and "features.0.weight" in result.err
    assert run_dirs(tmp_path / "runs") == []


@pytest.mark.parametrize("model,message", [
    ({"from": "nowhere/run"}, "model.from"),
    ({"reset_head": True}, "reset_head: true needs `from`"),
    ({"freeze": []}, "freeze is an empty list"),
])
def test_bad_transfer_keys_are_recipe_errors(cli, tmp_path, model, message):
    recipe = write_recipe(tmp_path / "b.yaml", digits_recipe([8, 9], {**BODY, **model}))
    result = cli("run", recipe)
    assert result.code == 2 and message in result.err
    assert run_dirs(tmp_path / "runs") == []


class NotATensor:
    pass


def test_checkpoints_holding_pickled_objects_are_refused(cli, tmp_path):
    torch.save({"state_dict": {"w": NotATensor()}}, tmp_path / "evil.pt")
    recipe = write_recipe(tmp_path / "b.yaml", digits_recipe([8, 9], {**BODY, "from": str(tmp_path / "evil.pt")}))
    result = cli("run", recipe)
    assert result.code == 2 and "weights_only=True" in result.err
