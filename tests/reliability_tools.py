"""Helpers shared by the reliability tests: a recipe whose every piece of state matters on resume,
and comparisons that say what "nothing was lost" means."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import pytest
import torch

from conftest import tiny_recipe


def stateful_recipe(**train) -> dict:
    """Tiny, deterministic, and using every kind of state a resume must restore: dropout (torch RNG),
    shuffling (data-order generator), Adam moments, a plateau schedule with warmup, early stopping
    (its counter and best weights), L2 penalty and clipping (their running sums), grad accumulation."""
    return tiny_recipe(
        model={"arch": "mlp", "hidden": [16], "dropout": 0.2},
        data={"name": "moons", "n_samples": 200, "batch_size": 16, "noise": 0.3},
        schedule={"name": "plateau", "patience": 1, "factor": 0.5, "warmup_epochs": 1},
        regularization={"l2": 1e-3}, clip={"norm": 1.0},
        train={"epochs": 12, "deterministic": True, "grad_accumulation": 2, "checkpoint_every_steps": 3,
               "early_stopping": {"monitor": "val_loss", "patience": 2, "min_delta": 0.02}, **train},
        log={"every_steps": 2, "tensorboard": False})


def metric_rows(run: Path) -> list[list[str]]:
    """metrics.csv as text fields, without the `seconds` column (wall time, different every run)."""
    with open(run / "metrics.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    drop = rows[0].index("seconds")
    return [row[:drop] + row[drop + 1:] for row in rows]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_tensors(a, b, where: str = "") -> None:
    """Nested containers of tensors and numbers are identical (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_run(resumed: Path, reference: Path) -> None:
    """A resumed run ended exactly as the uninterrupted one: metrics rows (all but wall time),
    final model and optimizer, best checkpoint, summary (all but wall time)."""
    assert metric_rows(resumed) == metric_rows(reference)
    last, ref_last = load(resumed / "checkpoints/last.pt"), load(reference / "checkpoints/last.pt")
    assert_same_tensors(last["learner"]["model"], ref_last["learner"]["model"], "model")
    assert_same_tensors(last["learner"]["optimizer"], ref_last["learner"]["optimizer"], "optimizer")
    stateful = lambda callbacks: {name: state for name, state in callbacks.items() if state}  # noqa: E731
    assert_same_tensors(stateful(last["callbacks"]), stateful(ref_last["callbacks"]), "callbacks")
    assert_same_tensors(load(resumed / "checkpoints/best.pt")["learner"]["model"],
                        load(reference / "checkpoints/best.pt")["learner"]["model"], "best")
    summary, ref_summary = (json.loads((r / "summary.json").read_text()) for r in (resumed, reference))
    for s in (summary, ref_summary):
        s.pop("wall_time_s")
    assert summary == ref_summary


def status(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def temp_files(run: Path) -> list[Path]:
    return [p for p in run.rglob("*") if p.name.endswith(".tmp")]


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def signal_self_at_step(monkeypatch, step: int, signum=signal.SIGINT) -> None:
    """Deliver `signum` to this process during optimizer step number `step` (1-based), as a user would."""
    from dltrain.train.loop import Learner
    real = Learner.optimizer_step
    calls = {"n": 0}

    def stepping(self, measure_norm):
        calls["n"] += 1
        if calls["n"] == step:
            os.kill(os.getpid(), signum)
        return real(self, measure_norm)

    monkeypatch.setattr(Learner, "optimizer_step", stepping)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: on a shared, busy machine two threads spin-wait on each other and a tiny
    run gets 30x slower. Subprocesses get the same through ONE_THREAD."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def dltrain(*args) -> int:
    """The real CLI in-process, for module-scoped fixtures (the `cli` fixture is per test)."""
    from dltrain.cli import main
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    return 0
