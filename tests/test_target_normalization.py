"""data.normalize_target: regression targets are standardized on the training split for training,
and every reported loss and metric is in the data's own units: the test MSE summary.json and
`compare` report is the MSE of the model's de-normalized predictions against the raw targets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_dirs, write_recipe
from reliability_tools import load, metric_rows, one_torch_thread  # noqa: F401

DIABETES = {"name": "diabetes_mlp", "seed": 0, "device": "cpu", "data": {"name": "diabetes"},
            "model": {"arch": "mlp", "hidden": [32]}, "train": {"epochs": 15},
            "log": {"tensorboard": False, "progress": "none"}}


def _trained(cli, tmp_path, *overrides) -> tuple[dict, object]:
    recipe = write_recipe(tmp_path / "diabetes.yaml", DIABETES)
    result = cli("run", recipe, "--runs-dir", tmp_path / "runs", *overrides)
    assert result.code == 0, result.err
    (run,) = run_dirs(tmp_path / "runs")
    return json.loads((run / "summary.json").read_text()), run


def _test_split(run, *overrides):
    """The run's built objects (its recipe, with `overrides`) with last.pt's weights loaded."""
    from dltrain.builder.objects import build
    from dltrain.recipe.load import load_recipe
    built = build(load_recipe(run / "recipe.yaml", list(overrides)))
    built.model.load_state_dict(load(run / "checkpoints/last.pt")["learner"]["model"])
    return built


def test_reported_test_metrics_are_those_of_denormalized_predictions_in_the_datas_units(cli, tmp_path):
    summary, run = _trained(cli, tmp_path)
    stats = json.loads((run / "run.json").read_text())["data"]["target_normalization"]
    shift, scale = np.array(stats["shift"]), np.array(stats["scale"])
    trained = _test_split(run)
    raw = _test_split(run, "data.normalize_target=false").data  # the same split, targets as the file has them
    np.testing.assert_array_equal(trained.data.test.x, raw.test.x)
    # fitted on the training split only
    np.testing.assert_allclose(shift, raw.train.y.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(scale, raw.train.y.std(axis=0), rtol=1e-5)
    assert abs(raw.test.y.mean() - shift[0]) > 1e-3  # the test split's own mean was not used

    with torch.no_grad():
        output = trained.model.eval()(torch.from_numpy(trained.data.test.x)).numpy()
    predicted = output * scale + shift  # de-normalized by hand
    error = predicted - raw.test.y
    test = summary["test"]
    assert test["test_loss"] == pytest.approx(float(np.mean(error ** 2)), rel=1e-4)  # mse loss, original units
    assert test["test_mae"] == pytest.approx(float(np.mean(np.abs(error))), rel=1e-4)
    assert test["test_rmse"] == pytest.approx(float(np.sqrt(np.mean(error ** 2))), rel=1e-4)
    # a sane model: better than predicting the training mean (R^2 > 0); unnormalized, 15 epochs of
    # adam leave it near 0 and its MSE near mean^2 + variance (~29,000)
    assert test["test_loss"] < float(np.mean((raw.test.y - shift) ** 2)) * 0.8

    header, *rows = metric_rows(run)  # metrics.csv: val_loss in the same units as val_rmse
    last = dict(zip(header, rows[-1]))
    assert float(last["val_loss"]) == pytest.approx(float(last["val_rmse"]) ** 2, rel=1e-9)
    compared = json.loads(cli("compare", run, "--format", "json").out)
    assert compared["rows"][0]["test"]["values"] == [pytest.approx(test["test_loss"])]


def test_without_normalization_the_targets_scale_defeats_a_short_run(cli, tmp_path):
    summary, run = _trained(cli, tmp_path, "data.normalize_target=false")
    assert "target_normalization" not in json.loads((run / "run.json").read_text())["data"]
    assert summary["test"]["test_loss"] > 20_000  # the issue's 28,670: far from the targets' scale
