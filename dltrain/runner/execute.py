"""One run: built objects (builder/) in, a finished run directory out: the run directory and its
lock, run.json, fit, the test pass, summary.json, the exit code."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from dltrain import __version__
from dltrain.builder.objects import Built, build
from dltrain.core.status import RunStatus
from dltrain.recipe.schema import Recipe
from dltrain.rundir.writer import RunDir, new_run_dir, write_text


@dataclass
class RunResult:
    run: RunDir
    status: RunStatus
    reason: str
    summary: dict
    exit_code: int


def _versions() -> dict:
    import torch
    return {"python": platform.python_version(), "torch": torch.__version__, "dltrain": __version__}


def execute(recipe: Recipe, runs_root: Path, *, reporter=None, argv: list[str] | None = None,
            batch: str | None = None, resume=None, pruning=None, run_info: dict | None = None, settles: bool = False,
            ranks=None) -> RunResult:
    """Build, create the run directory, train, test, and write the summary.
    `reporter` shows progress (the `progress` feature); `batch` names the batch this run belongs to
    (`dltrain run A B --seeds N`), kept in run.json. `resume` (a resume.ResumePoint) continues that
    run directory from its checkpoint instead; its lock stays the caller's, who took it. `pruning`
    is a sweep trial's callback (the `sweep_pruning` feature); `run_info` adds fields to run.json
    (a sweep's tag: {name, trial, params}). `settles`: this run's exit code is the
    command's (one `dltrain run`, `dltrain resume`): once its records are written, no signal may
    change it (core.signals.settle). `ranks` (runner/distributed.Ranks): this process is one rank of
    a data-parallel run; rank 0 records it, the others only train (their RunResult has no run)."""
    from dltrain.builder.training import build_learner, determinism
    from dltrain.rundir.lock import RunLock

    with determinism(recipe):
        built = build(recipe)  # every recipe and data error is raised before anything is written
        learner = build_learner(built)
        if ranks is not None:
            ranks.wrap(built, learner)
            if not ranks.is_writer:
                return _follow(built, learner, ranks, settles)
            run_info = {**(run_info or {}), "distributed": ranks.describe()}
        given = {"progress": reporter, "sweep_pruning": pruning}
        if resume is not None:
            return _train_and_record(resume.run, built, learner, given, argv, resume, batch, run_info, settles)
        chosen = ranks.run_dir if ranks is not None else None  # `dltrain run --nproc` made it, empty
        run = RunDir(chosen or new_run_dir(Path(runs_root), built.recipe.name))
        with RunLock.acquire(run.path):  # this run's own lock: released here, once
            return _train_and_record(run, built, learner, given, argv, None, batch, run_info, settles, ranks)


def _train_and_record(run: RunDir, built: Built, learner, given: dict, argv, resume, batch: str | None,
                      run_info: dict | None, settles: bool, ranks=None) -> RunResult:
    from dltrain.builder.features import build_callbacks
    from dltrain.builder.training import build_fit_state
    from dltrain.core.signals import stop_signals

    started = time.time()
    # as the user would retype it: `python -m dltrain`'s argv[0] is a path to __main__.py
    command = ["dltrain", *(argv if argv is not None else sys.argv)[1:]]
    if resume is None:
        record_start(run, built, command, batch, run_info)
    earlier_wall = 0.0  # wall time of earlier sessions that ended cleanly (a killed one records none)
    if resume is not None:
        earlier_wall = run.info.get("wall_time_s") or 0.0

    callbacks = build_callbacks(built, run, resumed=resume is not None, given=given)
    if ranks is not None:
        callbacks = ranks.callbacks(callbacks)
    state = build_fit_state(built, learner, callbacks)
    if resume is not None:
        from dltrain.runner.resume import restore
        restore(state, resume.checkpoint)
        if resume.extended:  # `resume RUN train.epochs=N`: the run's recipe now plans N epochs
            run.write_recipe(built.recipe.to_yaml())
        run.update_run_info(status=RunStatus.RUNNING, stop_reason=None, ended=None, host=socket.gethostname(),
                            pid=os.getpid(), resumed=[*run.info.get("resumed", []), {
                                "at": _now(), "checkpoint": resume.source, "epoch": state.epoch,
                                "step": state.step, "command": command, **(resume.extended or {})}])

    with stop_signals() as request:
        state.stop_request = request if ranks is None else ranks.agreed_stop(request)
        state.agree = ranks.agree if ranks is not None else None
        status, reason, error = _fit(state, learner, built, run)
        request.finishing = True  # from here on a signal is only noted: the records must be written
        return record_end(run, state, built, learner, (status, reason, error), started, earlier_wall,
                          state.stop_request, settles, ranks)


def record_start(run: RunDir, built: Built, command: list[str], batch: str | None, run_info: dict | None) -> None:
    """A new run's recipe.yaml and run.json (status running)."""
    run.write_recipe(built.recipe.to_yaml())
    n_params = sum(p.numel() for p in built.model.parameters())
    run.update_run_info(
        status=RunStatus.RUNNING, stop_reason=None, name=built.recipe.name, started=_now(), ended=None,
        device=str(built.device), seed=built.recipe.seed, command=command,
        versions=_versions(), parameters=n_params, host=socket.gethostname(), pid=os.getpid(),
        data=built.data.describe(), loss=built.loss_name, monitor={"name": built.monitor, "mode": built.mode},
        transfer=built.transfer or None, **({"batch": batch} if batch else {}), **(run_info or {}))


def record_end(run: RunDir, state, built: Built, learner, outcome: tuple, started: float, earlier_wall: float,
               request, settles: bool, ranks=None) -> RunResult:
    """After fit: the test pass (a finished run's), summary.json, run.json's final status, on_run_end.
    `outcome` is (status, reason, traceback text or None); `started` when this session began
    (time.time()), `earlier_wall` the wall time of earlier sessions; `ranks` those of a data-parallel run."""
    from dltrain.core.signals import settle
    from dltrain.train.events import fire

    status, reason, error = outcome
    test = _test(learner, built, status, ranks)
    wall = earlier_wall + time.time() - started
    summary = _summary(state, built, test, wall, status)
    run.write_summary(summary)
    # run.json keeps the way on for `dltrain show`; the CLI prints it on a line of its own (views/result.py)
    hint = f"; continue it with: dltrain resume {run.path}" if status is RunStatus.INTERRUPTED else ""
    run.update_run_info(status=status, stop_reason=reason + hint, ended=_now(), wall_time_s=round(wall, 3),
                        error=error)
    fire(state.callbacks, "on_run_end", state, summary)
    # interrupted: the signal's own code (130 or 143)
    exit_code = request.exit_code if status is RunStatus.INTERRUPTED else status.exit_code
    if settles:
        settle(exit_code)
    return RunResult(run, status, reason, summary, exit_code)


def _follow(built: Built, learner, ranks, settles: bool) -> RunResult:
    """A rank other than 0 of a data-parallel run: the same fit and test pass, no callback but
    the ranks' own, nothing written (rank 0 records the run)."""
    from dltrain.builder.training import build_fit_state
    from dltrain.core.signals import settle, stop_signals

    state = build_fit_state(built, learner, ranks.callbacks([]))
    with stop_signals() as request:
        state.stop_request, state.agree = ranks.agreed_stop(request), ranks.agree
        status, reason, _ = _fit(state, learner, built, None)
        request.finishing = True
        _test(learner, built, status, ranks)
        exit_code = state.stop_request.exit_code if status is RunStatus.INTERRUPTED else status.exit_code
        if settles:
            settle(exit_code)
    return RunResult(None, status, reason, {}, exit_code)


def _test(learner, built: Built, status: RunStatus, ranks) -> dict:
    """The test split's metrics when the run finished (every rank takes part in a data-parallel run)."""
    if not status.finished or built.loaders["test"] is None:
        return {}
    if ranks is not None:
        ranks.share_weights(learner)  # rank 0's early stopping may have put its best weights back
    return {f"test_{k}": v for k, v in learner.evaluate(built.loaders["test"]).items()}


def _fit(state, learner, built: Built, run: RunDir) -> tuple[RunStatus, str, str | None]:
    """Train; returns (status, reason, traceback text or None). Never raises but for BaseExceptions
    other than KeyboardInterrupt."""
    from dltrain.train.loop import fit

    try:
        fit(learner, built.loaders["train"], built.loaders["val"], state)
    except KeyboardInterrupt:
        return RunStatus.INTERRUPTED, f"stopped at once by the user at epoch {state.epoch + 1}, step {state.step}", None
    except Exception as exc:  # the run directory must say how it failed
        error = traceback.format_exc()
        if run is not None:  # None: a follower rank of a data-parallel run, which writes nothing
            with contextlib.suppress(OSError):
                write_text(run.error_file, error)
        return RunStatus.FAILED, f"{type(exc).__name__}: {exc}", error
    return RunStatus(state.stop.status), state.stop.reason, None


def _summary(state, built: Built, test: dict, wall: float, status: RunStatus) -> dict:
    from dltrain.train.events import Monitor
    history = state.history
    monitor = built.monitor
    tracker = Monitor(monitor, built.mode, built.min_delta)  # the same rule early stopping and best.pt use
    for row in history:
        if monitor in row:
            tracker.update(row[monitor], row["epoch"])
    best_row = next((r for r in history if r["epoch"] == tracker.best_epoch), None)

    def split(row, prefix):
        return {k: v for k, v in (row or {}).items() if k.startswith(prefix)}

    return {
        "status": status,
        "epochs": state.epoch,
        "steps": state.step,
        "monitor": monitor,
        "mode": built.mode,
        "best_epoch": best_row["epoch"] if best_row else None,
        "best_value": best_row[monitor] if best_row else None,
        "best": split(best_row, "val_") or split(best_row, "train_"),
        "final": split(history[-1] if history else None, "val_") or split(history[-1] if history else None, "train_"),
        "test": test,
        "wall_time_s": round(wall, 3),
        "parameters": sum(p.numel() for p in built.model.parameters()),
    }


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")

