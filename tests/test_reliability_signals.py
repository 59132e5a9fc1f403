"""Signals and kills against the real CLI in a subprocess: SIGINT and SIGTERM stop after the step
with a checkpoint (exit 130 / 143), a second SIGINT cannot corrupt anything, SIGKILL at any moment
leaves a loadable checkpoint, and in every case `dltrain resume` ends exactly as the uninterrupted
run. Plus two runs started at the same moment."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_dirs, tiny_recipe, write_recipe
from reliability_tools import (ONE_THREAD, assert_same_run, dltrain, load, one_torch_thread,  # noqa: F401
                               stateful_recipe, status, temp_files)
from dltrain.rundir.writer import atomic_write
from dltrain.core.signals import stop_signals


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_torch_thread):  # noqa: F811
    root = tmp_path_factory.mktemp("reference")
    assert dltrain("run", write_recipe(root / "ref.yaml", stateful_recipe()), "--runs-dir", root / "runs") == 0
    (run,) = run_dirs(root / "runs")
    return run


def start_run(recipe: Path, runs: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **ONE_THREAD}
    return subprocess.Popen([sys.executable, "-m", "dltrain", "run", str(recipe), "--runs-dir", str(runs)],
                            cwd=recipe.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(proc: subprocess.Popen, runs: Path, timeout: float = 120) -> Path:
    """The run directory, once its first checkpoint exists (so the run is inside training)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(runs.glob("*/checkpoints/last.pt"))
        if found:
            return found[0].parents[1]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("no checkpoint appeared")


def wait_for_step(proc: subprocess.Popen, run: Path, step: int, timeout: float = 120) -> None:
    """Until the newest checkpoint holds at least `step` optimizer steps (checkpoints are atomic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before the kill: " + str(proc.communicate())
        try:
            if load(run / "checkpoints/last.pt")["step"] >= step:
                return
        except (FileNotFoundError, RuntimeError, EOFError):
            pass
        time.sleep(0.005)
    raise AssertionError(f"no checkpoint reached step {step}")


# (A single SIGINT, really delivered, is covered in-process by test_reliability_resume.py: cheaper.)
@pytest.mark.parametrize("signals, code", [([signal.SIGTERM], 143), ([signal.SIGINT, signal.SIGINT], 130)],
                         ids=["SIGTERM", "SIGINT-twice"])
def test_stop_signal_saves_marks_interrupted_and_resume_loses_nothing(cli, tmp_path, reference, signals, code):
    recipe = write_recipe(tmp_path / "stateful.yaml", stateful_recipe())
    proc = start_run(recipe, tmp_path / "runs")
    run = wait_for_checkpoint(proc, tmp_path / "runs")
    for signum in signals:
        proc.send_signal(signum)
        time.sleep(0.005)  # the second one lands during the step, the save, or the shutdown
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"{signals[0].name}: finishing this step" in err and "Traceback" not in err
    info = status(run)
    assert info["status"] == "interrupted" and info["ended"]
    assert load(run / "checkpoints/last.pt")["step"] >= 3  # loadable, at or after the first checkpoint
    assert not temp_files(run) and not (run / "run.lock").exists()

    resumed = cli("resume", run)
    assert resumed.code == 0, resumed.err
    assert_same_run(run, reference)


def test_sigkill_at_any_moment_leaves_a_checkpoint_that_resumes_exactly(cli, tmp_path, reference):
    doc = stateful_recipe(checkpoint_every_steps=1)  # a save after every step: the kill likely lands in one
    doc["log"]["tensorboard"] = True  # its event files are appended to by the killed and the resumed process
    recipe = write_recipe(tmp_path / "stateful.yaml", doc)
    proc = start_run(recipe, tmp_path / "runs")
    run = wait_for_checkpoint(proc, tmp_path / "runs")
    wait_for_step(proc, run, random.randint(2, 12))  # by progress, not wall time: a busy or idle machine
    time.sleep(random.uniform(0.0, 0.02))  # ... and then somewhere inside a step or a save
    proc.kill()
    proc.communicate(timeout=60)
    assert status(run)["status"] == "running"  # SIGKILL: nobody could write the truth; resume will
    stale_lock = json.loads((run / "run.lock").read_text())
    assert stale_lock["pid"] == proc.pid

    resumed = cli("resume", run)
    assert resumed.code == 0, resumed.err
    assert "taking over a stale lock" in resumed.err
    assert not temp_files(run)  # a save cut short by the kill left a temp file: resume removed it
    # per process, one of curves and one of its part of the HParams session (the start, the end)
    assert len(list((run / "validation").glob("events.out.tfevents.*"))) == 4
    assert_same_run(run, reference)


STARTER = """
import sys, time
from pathlib import Path
import dltrain.cli, dltrain.runner.execute, dltrain.features.checkpoints  # the slow imports, before the start line
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.001)
dltrain.cli.main(sys.argv[3:])
"""


def test_two_runs_started_at_the_same_moment_get_their_own_directories(tmp_path):
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe(train={"epochs": 2}))
    env = {**os.environ, "PYTHONPATH": str(REPO), **ONE_THREAD}
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path / f"ready{i}"), str(go),
                               "run", str(recipe), "--runs-dir", str(tmp_path / "runs")],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.touch()  # both create their run directory within milliseconds: the same second, the same name prefix
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    runs = run_dirs(tmp_path / "runs")
    assert len(runs) == 2
    assert {status(run)["pid"] for run in runs} == {proc.pid for proc in procs}  # one writer per directory
    for run in runs:
        assert status(run)["status"] == "completed" and not (run / "run.lock").exists()
        assert (run / "metrics.csv").read_text().count("\n") == 3  # header + its own 2 epochs, nothing mixed in


def test_a_second_signal_during_a_write_waits_until_the_file_is_complete(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    before = signal.getsignal(signal.SIGINT)

    def write(handle):
        os.kill(os.getpid(), signal.SIGINT)  # the graceful request
        os.kill(os.getpid(), signal.SIGINT)  # the impatient second one, mid-write
        handle.write("new, complete")

    with stop_signals() as request:
        with pytest.raises(KeyboardInterrupt):
            atomic_write(target, write)  # raised once the write is done, not inside it
        assert request.signum == signal.SIGINT and request.exit_code == 130
    assert target.read_text() == "new, complete" and not temp_files(tmp_path)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_second_signal_outside_a_write_stops_at_once():
    with stop_signals() as request:
        os.kill(os.getpid(), signal.SIGTERM)
        assert request.signum == signal.SIGTERM and request.exit_code == 143
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises before this ends


def test_list_and_show_call_a_killed_run_killed_and_say_how_to_resume_it(cli, tmp_path):
    """run.json of a SIGKILLed run still says `running`; its process is gone from this host (issue 12, bug 6)."""
    recipe = write_recipe(tmp_path / "long.yaml", tiny_recipe(train={"epochs": 10_000, "checkpoint_interval": 0}, log={"tensorboard": False,
                                                                                          "diagnostics": False}))
    proc = start_run(recipe, tmp_path / "runs")
    run = wait_for_checkpoint(proc, tmp_path / "runs")
    live = cli("list", "--runs-dir", tmp_path / "runs")
    assert proc.poll() is None and " running " in live.out and "killed" not in live.out
    proc.kill()
    proc.communicate(timeout=60)  # reaped: no zombie keeps the pid
    assert status(run)["status"] == "running"  # on disk nothing changes: only the views tell the truth

    listed = cli("list", "--runs-dir", tmp_path / "runs")
    assert listed.code == 0 and " killed " in listed.out and " running " not in listed.out
    assert f"  dltrain resume {run}\n" in listed.out
    shown = cli("show", run.name, "--runs-dir", tmp_path / "runs")
    assert shown.code == 0 and shown.out.startswith(f"{run.name}  killed")
    assert f"its process (pid {proc.pid} on " in shown.out and "is gone" in shown.out
    assert shown.out.rstrip().endswith(f"continue it with:\n  dltrain resume {run}")


def test_ctrl_c_after_the_summary_leaves_a_completed_runs_exit_code_at_0(tmp_path):
    """The records are written, the summary printed: Ctrl-C pressed again and again while the
    process prints its last lines and the interpreter shuts down (a second or more for torch)
    must not turn exit code 0 into 130 or a death by SIGINT."""
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe(log={"tensorboard": True}))
    proc = start_run(recipe, tmp_path / "runs")
    for line in proc.stdout:
        if line.startswith("run directory:"):  # the summary table and the reason are printed
            break
    while proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (proc.returncode, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    (run,) = run_dirs(tmp_path / "runs")
    assert status(run)["status"] == "completed"


def test_an_in_process_run_gives_the_caller_its_signal_handlers_back(cli, tmp_path):
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    assert cli("run", write_recipe(tmp_path / "tiny.yaml", tiny_recipe())).code == 0
    assert {sig: signal.getsignal(sig) for sig in before} == before  # not left ignored after the run settled
