"""Data-parallel runs on torch.distributed (gloo, CPU), launched by `dltrain run --nproc 2` (through
torchrun's launcher) or by torchrun itself: the same curve as one process with the same global
batch, one run directory, resumable on one process, SIGTERM to the launcher checkpoints every
rank, a dead rank fails the run by name. Each launch starts three interpreters (the launcher and two workers): 10-15 s here."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO, run_dirs, write_recipe
from reliability_tools import ONE_THREAD, dltrain
from dltrain.data.loader import ArrayLoader

TOLERANCE = 1e-5  # float32 sums in another order (two half batches, all-reduced): not bit for bit


def digits_recipe(**train) -> dict:
    """Digits (1,258 training samples), no dropout. A global batch of 43 splits 22/21 between two
    ranks (and the trailing 11, 6/5): only the shares' weighting keeps the gradient the whole
    batch's mean. The processes together see exactly one process's batches."""
    return {"name": "dp", "seed": 0, "device": "cpu",
            "data": {"name": "digits", "val_fraction": 0.15, "test_fraction": 0.15, "normalize": "standardize",
                     "batch_size": 43},
            "model": {"arch": "mlp", "hidden": [32]},
            "optimizer": {"name": "adam", "lr": 0.003},
            "train": {"epochs": 5, **train}}


def launcher(recipe: Path, runs: Path, *, torchrun: bool = False) -> subprocess.Popen:
    """`dltrain run RECIPE --nproc 2`, or (torchrun=True) torchrun itself starting `dltrain run RECIPE`."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **ONE_THREAD}
    command = (["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "dltrain", "run",
                str(recipe)] if torchrun else ["-m", "dltrain", "run", str(recipe), "--nproc", "2"])
    return subprocess.Popen([sys.executable, *command, "--runs-dir", str(runs)], cwd=recipe.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def curve(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_same_curve(a: list[dict], b: list[dict]) -> float:
    """Epoch by epoch, every loss and accuracy within TOLERANCE; returns the largest difference."""
    assert len(a) == len(b)
    largest = 0.0
    for ra, rb in zip(a, b):
        assert ra["step"] == rb["step"]
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            largest = max(largest, abs(float(ra[key]) - float(rb[key])))
    assert largest < TOLERANCE
    return largest


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same recipe (early stopping on, best weights restored) on 2 processes and on 1. The 2 are
    started by torchrun itself (the other tests start them with --nproc): the workers find their
    ranks in its environment."""
    root = tmp_path_factory.mktemp("pair")
    recipe = write_recipe(root / "dp.yaml", digits_recipe(
        epochs=12, early_stopping={"monitor": "val_loss", "patience": 1, "min_delta": 0.02, "restore_best": True}))
    proc = launcher(recipe, root / "two", torchrun=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert dltrain("run", recipe, "--runs-dir", root / "one") == 0
    return run_dirs(root / "two"), run_dirs(root / "one")[0], out


def test_two_processes_record_one_processs_curve(pair):
    (two,), one, _ = pair
    largest = assert_same_curve(curve(two), curve(one))
    print(f"largest difference over {len(curve(one))} epochs: {largest:.2e}")
    s2, s1 = (json.loads((run / "summary.json").read_text()) for run in (two, one))
    # early stopping decided on rank 0 and shared: both stop at the same epoch, before the planned 12
    assert s2["status"] == s1["status"] == "early_stopped" and s2["epochs"] == s1["epochs"] < 12
    # the test pass after rank 0 restored its best weights: every rank tested those
    for key in ("test_loss", "test_accuracy"):
        assert abs(s2["test"][key] - s1["test"][key]) < TOLERANCE


def test_one_run_directory_records_the_world(pair, tmp_path):
    runs, _, out = pair
    assert len(runs) == 1  # rank 1 wrote nothing of its own
    info = json.loads((runs[0] / "run.json").read_text())
    assert info["distributed"]["world_size"] == 2 and info["distributed"]["backend"] == "gloo"
    assert sum(info["distributed"]["ranks_per_host"].values()) == 2
    assert info["command"][1:3] == ["run", str(runs[0].parents[1] / "dp.yaml")]  # what torchrun ran
    assert out.count("early_stopped") == 1  # one result printed: rank 0's
    saved = torch.load(runs[0] / "checkpoints" / "last.pt", weights_only=False)
    assert not any(name.startswith("module.") for name in saved["learner"]["model"])  # the plain names


def test_sigterm_to_the_launcher_checkpoints_and_resumes_on_one_process(tmp_path):
    doc = digits_recipe(epochs=10, checkpoint_every_steps=7)
    recipe = write_recipe(tmp_path / "dp.yaml", doc)
    proc = launcher(recipe, tmp_path / "runs")
    deadline = time.monotonic() + 120
    while not list((tmp_path / "runs").glob("*/checkpoints/last.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    (run,) = run_dirs(tmp_path / "runs")
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "interrupted" and "SIGTERM" in info["stop_reason"]
    assert "--nproc" in info["command"]  # the command the user typed, not a worker's
    assert json.loads((run / "summary.json").read_text())["epochs"] < 10
    # resumed on 1 process, it ends as the uninterrupted 1-process run (a mid-epoch checkpoint: the
    # epoch's running sums in it are both ranks')
    assert dltrain("resume", run) == 0
    assert dltrain("run", recipe, "--runs-dir", tmp_path / "reference") == 0
    assert_same_curve(curve(run), curve(run_dirs(tmp_path / "reference")[0]))


def test_a_dead_rank_fails_the_run_by_name(tmp_path):
    recipe = write_recipe(tmp_path / "dp.yaml", digits_recipe(epochs=400))
    proc = launcher(recipe, tmp_path / "runs")
    deadline = time.monotonic() + 120
    while not list((tmp_path / "runs").glob("*/metrics.csv")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    (run,) = run_dirs(tmp_path / "runs")
    rank0 = json.loads((run / "run.json").read_text())["pid"]
    workers = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True, check=True)
    (rank1,) = [int(pid) for pid in workers.stdout.split() if int(pid) != rank0]
    killed = time.monotonic()
    os.kill(rank1, signal.SIGKILL)
    proc.communicate(timeout=120)
    assert time.monotonic() - killed < 60  # no hang on the collective rank 1 will never join
    assert proc.returncode == 1
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed" and info["failed_rank"] == 1
    assert info["stop_reason"].startswith("rank 1 of 2 failed first (killed by SIGKILL)")


def test_shards_make_up_the_global_batch():
    x = torch.arange(83.0).reshape(-1, 1)
    whole = ArrayLoader(x, x, 16, shuffle=True, generator=torch.Generator().manual_seed(3))
    shards = [ArrayLoader(x, x, 16, shuffle=True, generator=torch.Generator().manual_seed(3)) for _ in range(3)]
    for rank, shard in enumerate(shards):
        shard.shard(rank, 3)
    assert len(whole) == len(shards[0]) == 6  # the trailing batch of 3 is shared by 3 ranks
    for i, (batch, *parts) in enumerate(zip(whole, *shards)):
        assert torch.equal(batch[0], torch.cat([p[0] for p in parts]))
        # the ranks' shares average to 1: their averaged gradients are the whole batch's mean
        assert sum(s.share(i) for s in shards) == pytest.approx(3)


def test_bad_distributed_arguments_exit_2_and_write_nothing(cli, tmp_path):
    recipe = write_recipe(tmp_path / "dp.yaml", {**digits_recipe(), "data": {**digits_recipe()["data"], "batch_size": 1}})
    result = cli("run", recipe, "--nproc", "2", "--runs-dir", tmp_path / "runs")
    assert result.code == 2 and "data.batch_size" in result.err + result.out
    result = cli("run", recipe, "--nproc", "2", "--seeds", "2", "--runs-dir", tmp_path / "runs")
    assert result.code == 2 and "--seeds" in result.err + result.out
    assert not run_dirs(tmp_path / "runs")


def test_resume_and_sweep_refuse_to_run_once_per_rank(cli, tmp_path, monkeypatch):
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    recipe = write_recipe(tmp_path / "dp.yaml", digits_recipe())
    for args in (("resume", tmp_path / "nowhere"), ("sweep", recipe)):
        result = cli(*args)
        assert result.code == 2 and "not under torchrun" in result.err + result.out


@pytest.fixture
def world_of_one():
    """A real gloo process group of one rank, in this process: the distributed code path (DDP,
    agreement points, rank 0's held stops) without a launch."""
    import torch.distributed as dist

    from dltrain.runner.distributed import Ranks
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield Ranks(0, 1, 0, "gloo", ["here"], dist.group.WORLD)
    finally:
        dist.destroy_process_group()


def test_divergence_held_for_the_agreement_point_ends_the_run_where_one_process_does(tmp_path, world_of_one):
    from conftest import tiny_recipe
    from dltrain.builder.objects import load_checked
    from dltrain.runner.execute import execute

    doc = tiny_recipe(data={"name": "friedman", "n_samples": 200, "batch_size": 32},
                      optimizer={"name": "sgd", "lr": 100.0}, train={"epochs": 5}, log={"every_steps": 2})
    recipe = load_checked(write_recipe(tmp_path / "boom.yaml", doc))
    alone = execute(recipe, tmp_path / "alone")
    ranked = execute(recipe, tmp_path / "ranked", ranks=world_of_one)
    assert alone.status == ranked.status == "diverged" and ranked.exit_code == 3
    # the non-finite guard's stop, raised in rank 0's on_log, waited for that step's agreement point
    assert ranked.reason == alone.reason and ranked.summary["steps"] == alone.summary["steps"]
    assert json.loads((ranked.run.path / "run.json").read_text())["distributed"]["world_size"] == 1


def test_time_budgeted_checkpoints_are_taken_at_rank_0s_time_on_every_rank(tmp_path):
    """train.checkpoint_interval is a clock, and each rank has its own: a mid-epoch checkpoint is a
    collective (the running sums move to rank 0), so the ranks must take it at the same step. With
    an interval far shorter than an epoch, each rank's clock alone would split them within a few
    steps and the run would hang until the collective timeout; agreed, it ends as one process's."""
    recipe = write_recipe(tmp_path / "dp.yaml", digits_recipe(epochs=3, checkpoint_interval=0.01))
    proc = launcher(recipe, tmp_path / "two")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert dltrain("run", recipe, "--runs-dir", tmp_path / "one") == 0
    (two,), (one,) = run_dirs(tmp_path / "two"), run_dirs(tmp_path / "one")
    assert_same_curve(curve(two), curve(one))
