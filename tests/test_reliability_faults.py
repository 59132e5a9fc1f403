"""Resource faults: an unwritable runs root, a full disk during a save, a dataset file that vanished,
a directory name that is taken. Each gives a clear error, leaves the previous checkpoint untouched
and no temporary file behind."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from conftest import run_dirs, tiny_recipe, write_recipe
from reliability_tools import (load, one_torch_thread, signal_self_at_step, stateful_recipe, status,  # noqa: F401
                               temp_files)
from dltrain.rundir.writer import atomic_write, new_run_dir


def test_a_runs_root_that_cannot_be_created_is_a_clear_error(cli, tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe())
    result = cli("run", recipe, "--runs-dir", tmp_path / "taken" / "runs")
    assert result.code == 2
    assert "cannot create a run directory under" in result.err and "--runs-dir" in result.err
    assert "Traceback" not in result.err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_runs_root_is_a_clear_error(cli, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    root.chmod(0o500)
    try:
        result = cli("run", write_recipe(tmp_path / "tiny.yaml", tiny_recipe()), "--runs-dir", root)
    finally:
        root.chmod(0o700)
    assert result.code == 2 and "Permission denied" in result.err and not list(root.iterdir())


def test_a_permission_error_on_the_runs_root_is_a_clear_error(cli, tmp_path, monkeypatch):
    """What a read-only runs root gives a non-root user (simulated: this suite may run as root)."""
    real = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self.parent == tmp_path / "runs":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    result = cli("run", write_recipe(tmp_path / "tiny.yaml", tiny_recipe()), "--runs-dir", tmp_path / "runs")
    assert result.code == 2 and "Permission denied" in result.err and "Traceback" not in result.err


def test_disk_full_during_a_save_fails_clearly_keeps_the_last_checkpoint_and_resume_works(cli, tmp_path, monkeypatch):
    from dltrain.rundir import writer as rundir
    recipe = write_recipe(tmp_path / "stateful.yaml", stateful_recipe())
    real_write = rundir.atomic_write
    saves = {"n": 0, "last_before": None}

    def atomic_write(path, write, **kwargs):
        if path.name == "last.pt":
            saves["n"] += 1
            if saves["n"] == 3:  # a few checkpoints exist by now
                saves["last_before"] = path.read_bytes()

                def half(handle):
                    handle.write(b"half a checkpoint")  # the disk fills up part way through
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

                return real_write(path, half, **kwargs)
        return real_write(path, write, **kwargs)

    monkeypatch.setattr(rundir, "atomic_write", atomic_write)  # checkpoints are written on a background thread
    result = cli("run", recipe, "--runs-dir", tmp_path / "runs")
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    (run,) = run_dirs(tmp_path / "runs")
    assert result.code == 1
    info = status(run)
    assert info["status"] == "failed"
    assert "No space left on device" in info["stop_reason"] and "last.pt" in info["stop_reason"]
    assert "No space left on device" in result.out  # the CLI says why it ended
    assert (run / "checkpoints/last.pt").read_bytes() == saves["last_before"]  # untouched
    assert not temp_files(run)

    resumed = cli("resume", run)  # once there is room again (exactness: test_reliability_resume.py)
    assert resumed.code == 0, resumed.err
    assert status(run)["status"] == "early_stopped"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    target.write_text('{"status": "running"}')

    def fsync_fails(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(OSError, match=r"No space left on device: '.*run\.json'"):
        atomic_write(target, lambda handle: handle.write('{"status": "completed"}'))
    assert target.read_text() == '{"status": "running"}'
    assert not temp_files(tmp_path)


def test_a_rotation_that_fails_keeps_the_last_checkpoint_in_place(tmp_path, monkeypatch):
    last, previous = tmp_path / "last.pt", tmp_path / "previous.pt"
    last.write_text("epoch 2")
    previous.write_text("epoch 1")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst) == last and str(src).endswith(".tmp"):  # the new file cannot take its place
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        atomic_write(last, lambda handle: handle.write("epoch 3"), previous=previous)
    monkeypatch.undo()
    assert last.read_text() == "epoch 2" and not temp_files(tmp_path)  # put back from previous.pt


def test_written_files_are_readable_like_any_other(tmp_path):
    atomic_write(tmp_path / "summary.json", lambda handle: handle.write("{}"))
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600


def test_a_dataset_file_that_vanished_stops_resume_clearly_and_changes_nothing(cli, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    lines = ["a,b,c,label"] + [f"{a},{b},{c},{int(a + b > 0)}" for a, b, c in x]
    data = tmp_path / "points.csv"
    data.write_text("\n".join(lines) + "\n")
    recipe = write_recipe(tmp_path / "csv.yaml", tiny_recipe(
        data={"name": "csv", "path": str(data), "target": "label", "batch_size": 16}, train={"epochs": 4}))
    signal_self_at_step(monkeypatch, 7, signal.SIGINT)
    assert cli("run", recipe).code == 130
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    (run,) = run_dirs(tmp_path / "runs")
    data.unlink()
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}

    result = cli("resume", run)
    assert result.code == 2
    assert "CSV file not found" in result.err and str(data) in result.err and "Traceback" not in result.err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # status still `interrupted`
    assert load(run / "checkpoints/last.pt")["step"] == 7
    assert not (run / "run.lock").exists()


def test_an_existing_run_directory_is_never_reused(tmp_path, monkeypatch):
    import secrets
    names = iter(["beef", "beef", "cafe"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(names))
    first = new_run_dir(tmp_path, "tiny")
    (first / "run.json").write_text("mine")
    second = new_run_dir(tmp_path, "tiny")  # same second, same random suffix drawn first
    assert first.name.endswith("-beef") and second.name.endswith("-cafe")
    assert (first / "run.json").read_text() == "mine" and not list(second.iterdir())


def test_the_lock_tells_a_live_run_from_a_killed_one(tmp_path):
    from reliability_tools import dead_pid
    from dltrain.rundir.lock import RunLock, RunLocked, lock_owner
    assert lock_owner(tmp_path) is None
    with RunLock.acquire(tmp_path):
        assert lock_owner(tmp_path)["pid"] == os.getpid()
        with pytest.raises(RunLocked, match=f"in use by pid {os.getpid()}"):
            RunLock.acquire(tmp_path)  # a second holder, even in the same process, is refused
    assert lock_owner(tmp_path) is None and not (tmp_path / "run.lock").exists()
    (tmp_path / "run.lock").write_text(f'{{"pid": {dead_pid()}, "host": "h"}}')  # left by a killed run
    assert lock_owner(tmp_path) is None
