"""`dltrain run` through the real entry point: the run directory RUNS.md promises."""

import csv
import json
import sys

import pytest
import torch

from conftest import REPO, run_dirs, run_subprocess, tiny_recipe, write_recipe


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One real `python -m dltrain run` in a fresh interpreter, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("e2e")
    doc = tiny_recipe(train={"epochs": 4, "early_stopping": {"monitor": "val_loss", "patience": 10}},
                      regularization={"l2": 1e-4}, clip={"norm": 5.0})
    recipe = write_recipe(tmp / "tiny.yaml", doc)
    proc = run_subprocess("run", recipe, "optimizer.lr=0.02", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(tmp / "runs")
    return run, proc


def test_plain_output_is_one_line_per_epoch_then_a_summary(finished_run):
    _, proc = finished_run
    epoch_lines = [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert "test_accuracy" in proc.stdout
    assert "tensorboard --logdir" in proc.stdout


def test_run_json_tells_how_the_run_ended(finished_run):
    run, _ = finished_run
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["stop_reason"] == "completed all 4 epochs"
    assert info["seed"] == 0 and info["device"] == "cpu"
    assert info["versions"]["torch"] == torch.__version__
    assert info["parameters"] == 16 * 2 + 16 + 16 * 2 + 2
    assert "optimizer.lr=0.02" in info["command"]


def test_resolved_recipe_holds_the_override_and_repeats_the_run(finished_run):
    from dltrain.recipe.load import load_recipe
    run, _ = finished_run
    recipe = load_recipe(run / "recipe.yaml")
    assert recipe.optimizer.lr == 0.02 and recipe.name == "tiny"


def test_metrics_csv_has_a_row_per_epoch_with_the_documented_columns(finished_run):
    run, _ = finished_run
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    for column in ("step", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "grad_norm",
                   "penalty", "seconds"):
        assert column in rows[0], column
    assert int(rows[-1]["step"]) == 4 * 5  # 140 training samples / batch 32 -> 5 steps per epoch


def test_summary_has_best_final_and_test_metrics(finished_run):
    run, _ = finished_run
    summary = json.loads((run / "summary.json").read_text())
    assert summary["monitor"] == "val_loss" and 1 <= summary["best_epoch"] <= 4
    assert set(summary["test"]) == {"test_loss", "test_accuracy"}
    assert 0 <= summary["test"]["test_accuracy"] <= 1
    assert "val_accuracy" in summary["final"]


def test_checkpoints_load_with_weights_only(finished_run):
    run, _ = finished_run
    for name in ("last.pt", "best.pt"):
        state = torch.load(run / "checkpoints" / name, weights_only=True)
        assert set(state["learner"]["model"]) >= {"head.weight", "layers.0.linear.weight"}
        assert state["epoch"] >= 1 and "rng" in state and "optimizer" in state["learner"]
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 4
    assert not list((run / "checkpoints").glob("*.tmp")) and not list(run.glob(".*.tmp"))


def test_tensorboard_overlays_train_and_validation_curves_in_two_tensorboard_runs(finished_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run, _ = finished_run
    tags = {}
    for split in ("train", "validation"):
        acc = EventAccumulator(str(run / split), size_guidance={"histograms": 0})
        acc.Reload()
        tags[split] = set(acc.Tags()["scalars"]) | set(acc.Tags()["histograms"])
        assert [e.step for e in acc.Scalars("Curves/loss")] == [1, 2, 3, 4]
    # the same tag in both writers is what makes TensorBoard draw them on one chart
    assert {"Curves/loss", "Curves/accuracy"} <= tags["train"] & tags["validation"]
    assert {"Curves/batch_loss", "Optimizer/learning_rate", "Optimizer/grad_norm"} <= tags["train"]
    # two TensorBoard runs per run (each folder holding event files is one): TensorBoard's older
    # dashboards enable none by default past 40, so four per run emptied them from 11 runs on
    folders = {p.parent.relative_to(run).as_posix() for p in run.rglob("events.out.tfevents.*")}
    assert folders == {"train", "validation"}
    # Time Series groups cards by the tag's first part, sorted by character code, and opens the
    # first two groups: the curves' group comes before every other (diagnostics histograms included)
    groups = sorted({tag.split("/", 1)[0] for split in tags for tag in tags[split]})
    assert groups[0] == "Curves" and len(groups) > 2


def test_same_seed_same_numbers(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(model={"arch": "mlp", "hidden": [8], "dropout": 0.2}))
    for _ in range(2):
        assert cli("run", recipe).code == 0
    first, second = [list(csv.DictReader((run / "metrics.csv").open())) for run in run_dirs(tmp_path / "runs")]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(first) == strip(second)


def test_huge_learning_rate_ends_diverged_with_epoch_and_step(cli, tmp_path):
    doc = tiny_recipe(data={"name": "friedman", "n_samples": 200, "batch_size": 32},
                      optimizer={"name": "sgd", "lr": 100.0}, train={"epochs": 5})
    result = cli("run", write_recipe(tmp_path / "boom.yaml", doc))
    assert result.code == 3
    (run,) = run_dirs(tmp_path / "runs")
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "diverged"
    assert "non-finite loss" in info["stop_reason"] and "at epoch 1, step" in info["stop_reason"]
    for name in ("last.pt", "best.pt"):  # nothing non-finite is ever checkpointed
        path = run / "checkpoints" / name
        if path.exists():
            state = torch.load(path, weights_only=True)
            assert all(torch.isfinite(t).all() for t in state["learner"]["model"].values())


def test_help_answers_without_importing_torch():
    import subprocess
    code = ("import sys\nfrom dltrain.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported by --help'\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "validate" in proc.stdout and "catalog" in proc.stdout


def test_validate_prints_the_resolved_recipe_and_a_model_summary(cli, tmp_path):
    result = cli("validate", write_recipe(tmp_path / "r.yaml", tiny_recipe()), "model.hidden=[10,6]")
    assert result.code == 0, result.err
    assert "betas: [0.9, 0.999]" in result.out  # a default filled in
    assert "layers.1.linear" in result.out and "['B', 6]" in result.out
    assert f"{2 * 10 + 10 + 10 * 6 + 6 + 6 * 2 + 2}" in result.out  # total parameters
    assert not (tmp_path / "runs").exists()


def test_catalog_lists_every_registry_entry(cli):
    from dltrain.views.catalog import registries
    result = cli("catalog")
    assert result.code == 0
    for registry in registries().values():
        for name in registry.names():
            assert name in result.out, name
    assert cli("catalog", "optimizers").code == 0
    bad = cli("catalog", "optimzer")
    assert bad.code == 2 and "did you mean `optimizer`" in bad.err


def test_the_cli_lets_openmp_threads_sleep_unless_the_user_chose():
    import subprocess
    code = ("import os\nfrom dltrain.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('OMP_WAIT_POLICY'))\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env)
    assert proc.stdout.strip().splitlines()[-1] == "PASSIVE"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert proc.stdout.strip().splitlines()[-1] == "ACTIVE"
