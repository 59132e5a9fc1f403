"""Every bad recipe: a message naming the key and what was expected, exit code 2, no traceback,
nothing written under runs/."""

import pytest

from conftest import tiny_recipe, write_recipe

GOOD = tiny_recipe()


def with_(**sections):
    return tiny_recipe(**sections)


CASES = {
    "typo in a top-level key": (
        {**GOOD, "optimiser": {"name": "adam"}}, ["optimiser", "unknown key", "did you mean `optimizer`"]),
    "typo in a nested key": (
        with_(model={"arch": "mlp", "hiden": [8]}), ["model.hiden", "did you mean `hidden`"]),
    "wrong type": (
        with_(train={"epochs": "ten"}), ["train.epochs", "valid integer", "'ten'"]),
    "negative learning rate": (
        with_(optimizer={"name": "sgd", "lr": -0.1}), ["optimizer.lr", "greater than 0", "-0.1"]),
    "unknown activation": (
        with_(model={"arch": "mlp", "activation": "rleu"}), ["model.activation", "unknown activation `rleu`",
                                                             "did you mean `relu`"]),
    "unknown optimizer": (
        with_(optimizer="adamw2"), ["optimizer", "unknown optimizer `adamw2`", "did you mean `adamw`"]),
    "unknown component parameter": (
        with_(optimizer={"name": "adam", "beta": [0.9, 0.99]}), ["optimizer.beta", "did you mean `betas`"]),
    "YAML syntax error": (
        "name: x\ndata: {name: moons\nmodel: {arch: mlp}\n", ["YAML error", ".yaml:"]),
    "duplicate key": (
        "name: x\ndata: {name: moons}\nmodel: {arch: mlp}\nseed: 1\nseed: 2\n", ["seed", "duplicate key", ":5"]),
    "missing required section": (
        {"name": "x", "data": {"name": "moons"}}, ["model", "required key is missing"]),
    "dropout list of the wrong length": (
        with_(model={"arch": "mlp", "hidden": [8, 8], "dropout": [0.1]}), ["dropout has 1 rate but", "2 hidden layers"]),
    "dropout out of range": (
        with_(model={"arch": "mlp", "dropout": 1.5}), ["model.dropout", "less than 1"]),
    "unknown dataset": (
        with_(data={"name": "mnits"}), ["data", "unknown dataset `mnits`"]),
    "loss that does not fit the task": (
        with_(loss="mse"), ["loss", "`mse` is a regression loss", "classification task"]),
    "clip with both norm and value": (
        with_(clip={"norm": 1.0, "value": 0.5}), ["clip", "exactly one of `norm` or `value`"]),
    "unsafe YAML tag": (
        "name: x\ndata: !!python/object/apply:os.system ['touch pwned']\nmodel: {arch: mlp}\n",
        ["unsafe or unknown YAML tag", "python/object/apply"]),
    "early stopping on a metric the task does not record": (
        with_(train={"epochs": 2, "early_stopping": {"monitor": "val_mae"}}),
        ["train.early_stopping.monitor", "`val_mae` is not recorded for a classification task"]),
    "bias initializer that needs a matrix": (
        with_(model={"arch": "mlp", "bias_init": "he_normal"}), ["bias_init `he_normal` needs a weight matrix"]),
    "csv file that does not exist": (
        with_(data={"name": "csv", "path": "nowhere.csv", "target": "y"}), ["CSV file not found", "nowhere.csv"]),
}


@pytest.mark.parametrize("doc,expected", list(CASES.values()), ids=list(CASES))
def test_bad_recipe_is_refused_clearly(cli, tmp_path, doc, expected):
    recipe = write_recipe(tmp_path / "bad.yaml", doc)
    result = cli("run", recipe)
    assert result.code == 2
    for fragment in expected:
        assert fragment in result.err, f"{fragment!r} not in:\n{result.err}"
    assert "Traceback" not in result.err + result.out
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert not (tmp_path / "pwned").exists()


def test_every_problem_is_reported_at_once_with_its_line(cli, tmp_path):
    recipe = write_recipe(tmp_path / "bad.yaml", (
        "name: x\n"
        "data: {name: moons}\n"
        "model:\n"
        "  arch: mlp\n"
        "  activaton: relu\n"
        "optimizer: {name: adam, lr: -1}\n"))
    result = cli("validate", recipe)
    assert result.code == 2
    assert "2 problems" in result.err
    assert "model.activaton (" in result.err and "bad.yaml:5)" in result.err
    assert "optimizer.lr (" in result.err and "bad.yaml:6)" in result.err


@pytest.mark.parametrize("override,expected", [
    ("optimizer.lr", "expected KEY=VALUE"),
    ("=3", "expected KEY=VALUE"),
    ("model.hidden=[1,", "bad value in override"),
    ("model.hidden.0.x=1", "not a mapping"),
    ("optimizer.lr=fast", "optimizer.lr (command line: optimizer.lr=fast)"),
])
def test_bad_override_is_refused(cli, tmp_path, override, expected):
    recipe = write_recipe(tmp_path / "ok.yaml", GOOD)
    result = cli("run", recipe, override)
    assert result.code == 2
    assert expected in result.err
    assert not (tmp_path / "runs").exists()


def test_missing_recipe_file(cli, tmp_path):
    result = cli("run", tmp_path / "absent.yaml")
    assert result.code == 2
    assert "recipe file not found" in result.err


def test_missing_cuda_is_a_clear_error_not_a_crash(cli, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error only applies without it")
    result = cli("run", write_recipe(tmp_path / "r.yaml", with_(device="cuda")))
    assert result.code == 2 and "CUDA is not available" in result.err
