"""`dltrain resume`: an interrupted run, resumed, ends exactly as the uninterrupted run (CPU,
deterministic): same parameters, optimizer state, callback state, and the same metrics.csv rows
byte for byte (the `seconds` column, wall time, excepted)."""

from __future__ import annotations

import shutil
import signal

import pytest

from conftest import run_dirs, tiny_recipe, write_recipe
from reliability_tools import (assert_same_run, dltrain, load, one_torch_thread, signal_self_at_step,  # noqa: F401
                               stateful_recipe, status, temp_files)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_torch_thread):  # noqa: F811
    """The uninterrupted run of stateful_recipe()."""
    root = tmp_path_factory.mktemp("reference")
    recipe = write_recipe(root / "ref.yaml", stateful_recipe())
    assert dltrain("run", recipe, "--runs-dir", root / "runs") == 0
    (run,) = run_dirs(root / "runs")
    return run


def interrupted_run(cli, tmp_path, monkeypatch, step: int, signum=signal.SIGINT):
    recipe = write_recipe(tmp_path / "stateful.yaml", stateful_recipe())
    signal_self_at_step(monkeypatch, step, signum)
    result = cli("run", recipe, "--runs-dir", tmp_path / "runs")
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    (run,) = run_dirs(tmp_path / "runs")
    return result, run


@pytest.mark.parametrize("step", [4, 5, 53], ids=["mid-epoch", "last-step-of-epoch", "after-a-bad-epoch"])
def test_interrupted_then_resumed_run_ends_exactly_as_the_uninterrupted_one(cli, tmp_path, monkeypatch, reference,
                                                                             step):
    before = {signal.SIGINT: signal.getsignal(signal.SIGINT), signal.SIGTERM: signal.getsignal(signal.SIGTERM)}
    result, run = interrupted_run(cli, tmp_path, monkeypatch, step)
    assert result.code == 130, result.err
    info = status(run)
    assert info["status"] == "interrupted" and "SIGINT" in info["stop_reason"]
    assert f"dltrain resume {run}" in info["stop_reason"]
    assert load(run / "checkpoints/last.pt")["step"] == step  # the step under way was finished, then saved
    assert not (run / "run.lock").exists() and not temp_files(run)
    assert {s: signal.getsignal(s) for s in before} == before  # previous handlers are back

    resumed = cli("resume", run)
    assert resumed.code == 0, resumed.err
    assert f"epoch {(step - 1) // 5}, step {step}" in resumed.out
    assert status(run)["status"] == "early_stopped"  # at epoch 11: needs early stopping's restored counter
    assert status(run)["resumed"][0]["step"] == step
    assert_same_run(run, reference)


def test_a_stop_signal_during_validation_checkpoints_the_epoch_end(cli, tmp_path, monkeypatch, reference):
    import os
    from dltrain.train.loop import Learner
    real = Learner.evaluate
    calls = {"n": 0}

    def evaluate(self, loader):
        calls["n"] += 1
        if calls["n"] == 2:  # validation of epoch 2
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, loader)

    monkeypatch.setattr(Learner, "evaluate", evaluate)
    recipe = write_recipe(tmp_path / "stateful.yaml", stateful_recipe())
    result = cli("run", recipe, "--runs-dir", tmp_path / "runs")
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    (run,) = run_dirs(tmp_path / "runs")
    assert result.code == 143
    checkpoint = load(run / "checkpoints/last.pt")
    assert (checkpoint["epoch"], checkpoint["progress"]) == (2, None)
    assert cli("resume", run).code == 0
    assert_same_run(run, reference)


def test_a_corrupt_last_checkpoint_is_reported_and_the_previous_one_is_used(cli, tmp_path, monkeypatch, reference):
    _, run = interrupted_run(cli, tmp_path, monkeypatch, 9)
    last = run / "checkpoints/last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # as a torn write would leave it
    previous_step = load(run / "checkpoints/previous.pt")["step"]
    assert previous_step < 9

    resumed = cli("resume", run)
    assert resumed.code == 0, resumed.err
    assert "last.pt: unreadable" in resumed.err and "using checkpoints/previous.pt" in resumed.err
    assert status(run)["resumed"][0] == {**status(run)["resumed"][0], "checkpoint": "previous.pt",
                                         "step": previous_step}
    assert_same_run(run, reference)  # resuming from the older checkpoint is just as exact


def test_no_usable_checkpoint_is_a_clear_error_and_changes_nothing(cli, tmp_path, monkeypatch):
    _, run = interrupted_run(cli, tmp_path, monkeypatch, 9)
    (run / "checkpoints/last.pt").write_bytes(b"not a checkpoint")
    (run / "checkpoints/previous.pt").unlink()
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}

    result = cli("resume", run)
    assert result.code == 2
    assert "no usable checkpoint" in result.err and "last.pt: unreadable" in result.err, result.err
    assert "previous.pt: no such file" in result.err and "Traceback" not in result.err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert not (run / "run.lock").exists()


def test_finished_or_missing_runs_are_not_resumed(cli, tmp_path):
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe(train={"epochs": 1}))
    assert cli("run", recipe).code == 0
    (run,) = run_dirs(tmp_path / "runs")
    done = cli("resume", run)
    assert done.code == 2 and "cannot be resumed: it completed" in done.err
    missing = cli("resume", "no-such-run")
    assert missing.code == 2 and "no run directory `no-such-run`" in missing.err
    by_name = cli("resume", run.name)  # a bare name is looked up under --runs-dir (default ./runs)
    assert by_name.code == 2 and "it completed" in by_name.err


def test_a_run_killed_before_any_status_update_is_resumed_from_its_checkpoint(cli, tmp_path, monkeypatch, reference):
    """SIGKILL leaves run.json saying `running` and no lock holder: resume takes the stale lock over."""
    _, run = interrupted_run(cli, tmp_path, monkeypatch, 7)
    info = status(run)
    info["status"], info["stop_reason"] = "running", None
    (run / "run.json").write_text(__import__("json").dumps(info))
    from reliability_tools import dead_pid
    (run / "run.lock").write_text(f'{{"pid": {dead_pid()}, "host": "somewhere"}}')
    result = cli("resume", run)
    assert result.code == 0, result.err
    assert "taking over a stale lock" in result.err and "host somewhere" in result.err
    assert not (run / "run.lock").exists()
    assert_same_run(run, reference)


def test_resume_of_a_run_in_use_is_refused_with_its_owner(cli, tmp_path, monkeypatch):
    import os
    import socket
    from dltrain.rundir.lock import RunLock
    _, run = interrupted_run(cli, tmp_path, monkeypatch, 4)
    with RunLock.acquire(run):  # a live process holds the run
        result = cli("resume", run)
    assert result.code == 2
    assert f"in use by pid {os.getpid()} on host {socket.gethostname()}" in result.err
    assert status(run)["status"] == "interrupted"


def test_checkpoints_do_not_change_training(cli, tmp_path, reference):
    """Step checkpoints (and saving at all) leave the numbers alone: same run without them."""
    doc = stateful_recipe()
    doc["train"].pop("checkpoint_every_steps")
    recipe = write_recipe(tmp_path / "plain.yaml", doc)
    assert cli("run", recipe, "--runs-dir", tmp_path / "plain").code == 0
    (run,) = run_dirs(tmp_path / "plain")
    from reliability_tools import metric_rows
    assert metric_rows(run) == metric_rows(reference)
    shutil.rmtree(run)


def test_a_checkpoint_whose_callback_states_are_keyed_by_class_name_resumes_exactly(cli, tmp_path, monkeypatch,
                                                                                     reference):
    """Checkpoints written before the feature registry keyed callback states by class name."""
    import torch
    result, run = interrupted_run(cli, tmp_path, monkeypatch, 53)  # after a bad epoch: early stopping counts 1
    assert result.code == 130, result.err
    old_names = {"nonfinite": "NonFiniteGuard", "early_stopping": "EarlyStopping", "metrics_file": "MetricsFile",
                 "checkpoint": "Checkpointer", "progress": "PlainProgress", "diagnostics": "Diagnostics"}
    checkpoint = load(run / "checkpoints/last.pt")
    assert set(checkpoint["callbacks"]) == set(old_names)
    checkpoint["callbacks"] = {old_names[name]: state for name, state in checkpoint["callbacks"].items()}
    torch.save(checkpoint, run / "checkpoints/last.pt")

    resumed = cli("resume", run)
    assert resumed.code == 0, resumed.err
    assert status(run)["status"] == "early_stopped"  # at epoch 11: needs early stopping's restored counter
    assert_same_run(run, reference)
