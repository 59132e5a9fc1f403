"""How runs end, and the training options that change the step: each leaves a truthful record."""

import json

import pytest
import torch

from conftest import run_dirs, tiny_recipe, write_recipe


def test_an_exception_during_training_marks_the_run_failed_with_its_traceback(cli, tmp_path, monkeypatch):
    from dltrain.train import loop

    def broken(self, loader, state):
        raise RuntimeError("simulated failure inside the training step")

    monkeypatch.setattr(loop.Learner, "train_epoch", broken)
    result = cli("run", write_recipe(tmp_path / "r.yaml", tiny_recipe()))
    assert result.code == 1
    (run,) = run_dirs(tmp_path / "runs")
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed"
    assert "simulated failure" in info["stop_reason"]
    assert "Traceback" in (run / "error.txt").read_text()
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


def test_ctrl_c_marks_the_run_interrupted(cli, tmp_path, monkeypatch):
    from dltrain.train import loop

    def interrupted(self, loader, state):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop.Learner, "train_epoch", interrupted)
    result = cli("run", write_recipe(tmp_path / "r.yaml", tiny_recipe()))
    assert result.code == 130
    (run,) = run_dirs(tmp_path / "runs")
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"


def test_bf16_mixed_precision_trains_on_the_cpu(cli, tmp_path):
    doc = tiny_recipe(train={"epochs": 2, "precision": "bf16"})
    assert cli("run", write_recipe(tmp_path / "r.yaml", doc)).code == 0
    (run,) = run_dirs(tmp_path / "runs")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final"]["val_loss"] < 10


def test_fp16_without_cuda_is_a_recipe_error(cli, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("fp16 is allowed with CUDA")
    result = cli("run", write_recipe(tmp_path / "r.yaml", tiny_recipe(device="auto", train={"precision": "fp16"})))
    assert result.code == 2 and "fp16 mixed precision needs a CUDA device" in result.err


def test_deterministic_switch_is_restored_after_the_run(cli, tmp_path):
    assert not torch.are_deterministic_algorithms_enabled()
    doc = tiny_recipe(train={"epochs": 1, "deterministic": True})
    assert cli("run", write_recipe(tmp_path / "r.yaml", doc)).code == 0
    assert not torch.are_deterministic_algorithms_enabled()


def test_full_batch_gd_takes_one_step_per_epoch(cli, tmp_path):
    doc = tiny_recipe(data={"name": "moons", "n_samples": 200, "batch_size": "full"}, optimizer="gd",
                      train={"epochs": 3})
    assert cli("run", write_recipe(tmp_path / "r.yaml", doc)).code == 0
    (run,) = run_dirs(tmp_path / "runs")
    assert json.loads((run / "summary.json").read_text())["steps"] == 3


def test_early_stopping_run_ends_early_stopped_and_tests_the_best_weights(cli, tmp_path):
    doc = tiny_recipe(optimizer={"name": "sgd", "lr": 1e-6},  # too small to improve anything
                      train={"epochs": 30, "early_stopping": {"monitor": "val_loss", "patience": 2,
                                                              "min_delta": 0.01}})
    assert cli("run", write_recipe(tmp_path / "r.yaml", doc)).code == 0
    (run,) = run_dirs(tmp_path / "runs")
    summary = json.loads((run / "summary.json").read_text())
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "early_stopped" and summary["epochs"] == 3
    assert summary["best_epoch"] == 1
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == 1
