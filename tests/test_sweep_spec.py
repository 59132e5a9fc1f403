"""Bad sweep specs are recipe errors: exit 2, the key named, nothing written."""

import pytest

from conftest import tiny_recipe, write_recipe


def sweep_recipe(**sweep):
    return tiny_recipe(sweep={"method": "random", "trials": 2, **sweep})


BAD = {
    "unknown key path": ({"params": {"optimizer.lrr": [0.1, 0.01]}},
                         "sweep.params.optimizer.lrr", "unknown key `lrr`; did you mean `lr`?"),
    "unknown section": ({"params": {"modell.hidden": [[8]]}},
                        "sweep.params.modell.hidden", "unknown key `modell`; did you mean `model`?"),
    "bad choice value": ({"params": {"model.activation": ["relu", "gelux"]}},
                         "sweep.params.model.activation", "unknown activation `gelux`; did you mean `gelu`?"),
    "range end out of bounds": ({"params": {"optimizer.lr": {"low": -1.0, "high": 0.1}}},
                                "sweep.params.optimizer.lr", "`optimizer.lr` = -1.0 gives an invalid recipe"),
    "empty choices": ({"params": {"model.activation": []}},
                      "sweep.params.model.activation", "empty list of choices"),
    "low > high": ({"params": {"optimizer.lr": {"low": 0.1, "high": 0.001}}},
                   "sweep.params.optimizer.lr", "low (0.1) is greater than high (0.001)"),
    "log with low <= 0": ({"params": {"optimizer.weight_decay": {"low": 0.0, "high": 0.1, "log": True}}},
                          "sweep.params.optimizer.weight_decay", "a log range needs low > 0"),
    "log and step": ({"params": {"optimizer.lr": {"low": 0.001, "high": 0.1, "log": True, "step": 0.001}}},
                     "sweep.params.optimizer.lr", "`log` and `step` cannot be combined"),
    "step does not divide": ({"params": {"data.batch_size": {"low": 16, "high": 60, "step": 16}}},
                             "sweep.params.data.batch_size", "is not a multiple of step"),
    "range key typo": ({"params": {"optimizer.lr": {"low": 0.001, "hihg": 0.1}}},
                       "sweep.params.optimizer.lr", "unknown range key `hihg`; did you mean `high`?"),
    "a scalar is no search": ({"params": {"optimizer.lr": 0.1}},
                              "sweep.params.optimizer.lr", "expected a list of choices or a range"),
    "no params": ({"params": {}}, "sweep.params", "at least 1 item"),
    "sweeping the sweep": ({"params": {"sweep.trials": [1, 2]}}, "sweep.params", "cannot vary its own settings"),
    "grid needs discrete params": ({"method": "grid", "trials": None,
                                    "params": {"optimizer.lr": {"low": 0.001, "high": 0.1}}},
                                   "sweep", "grid search needs choices (a list) or a range with `step`"),
    "grid with a different trial count": ({"method": "grid", "trials": 5, "params": {"optimizer.lr": [0.1, 0.01]}},
                                          "sweep", "a grid runs every combination: 2 here, but trials is 5"),
    "unknown metric": ({"metric": "val_acc", "params": {"optimizer.lr": [0.1]}},
                       "sweep.metric", "did you mean `val_accuracy`?"),
    "unknown method": ({"method": "bayesian", "params": {"optimizer.lr": [0.1]}},
                       "sweep.method", "unknown sweep method `bayesian`"),
    "unknown pruner": ({"pruner": "hyperbnd", "params": {"optimizer.lr": [0.1]}},
                       "sweep.pruner", "did you mean `hyperband`?"),
    "unsupported storage": ({"storage": "mysql://db/x", "params": {"optimizer.lr": [0.1]}},
                            "sweep.storage", "unsupported storage `mysql://`"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_sweep_spec_is_a_recipe_error_and_writes_nothing(cli, tmp_path, case):
    sweep, key, message = BAD[case]
    doc = sweep_recipe(**sweep)
    doc["sweep"] = {k: v for k, v in doc["sweep"].items() if v is not None}
    recipe = write_recipe(tmp_path / "bad.yaml", doc)
    result = cli("sweep", recipe)
    assert result.code == 2, result.err
    assert f"{key} (" in result.err and message in result.err, result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "runs").exists()
    assert cli("validate", recipe).code == 2  # the same checks guard every verb


def test_metric_not_recorded_for_the_task_is_refused_before_anything_is_written(cli, tmp_path):
    recipe = write_recipe(tmp_path / "bad.yaml", sweep_recipe(metric="val_mae", params={"optimizer.lr": [0.1]}))
    result = cli("sweep", recipe)
    assert result.code == 2
    assert "sweep.metric" in result.err and "not recorded for a classification task" in result.err
    assert not (tmp_path / "runs").exists()


def test_a_recipe_without_a_sweep_section_is_a_usage_error(cli, tmp_path):
    result = cli("sweep", write_recipe(tmp_path / "plain.yaml", tiny_recipe()))
    assert result.code == 2 and "has no `sweep:` section" in result.err


def test_defaults_are_resolved_and_visible(cli, tmp_path):
    params = {"optimizer.lr": {"low": 1.0e-4, "high": 0.1, "log": True}, "model.hidden": [[8], [16, 16]]}
    recipe = write_recipe(tmp_path / "ok.yaml", tiny_recipe(sweep={"params": params}))
    result = cli("validate", recipe)
    assert result.code == 0, result.err
    for line in ("method:", "name: bayes", "trials: 20", "metric: val_loss", "mode: min", "seeds: 1", "workers: 1",
                 "log: true"):
        assert line in result.out, line


@pytest.mark.parametrize("variant", [("sweep_digits.yaml",), ("sweep_digits.yaml", "sweep.method=random"),
                                     ("sweep_digits.yaml", "sweep.pruner=hyperband"), ("sweep_digits_grid.yaml",)])
def test_shipped_sweep_recipes_are_valid(cli, variant):
    from conftest import REPO
    result = cli("validate", REPO / "recipes" / variant[0], *variant[1:])
    assert result.code == 0, result.err
