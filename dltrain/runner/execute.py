"""From a validated Recipe to built objects, and from built objects to a finished run directory."""

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
from dltrain.components import OPTIMIZERS, SCHEDULES
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
            batch: str | None = None, resume=None, callbacks: tuple = (),
            run_info: dict | None = None, settles: bool = False) -> RunResult:
    """Build, create the run directory, train, test, and write the summary.
    `batch` names the batch this run belongs to (`dltrain run A B --seeds N`); kept in run.json.
    `resume` (a resume.ResumePoint) continues that locked run directory from its checkpoint instead.
    `callbacks` are added after the recording ones (a sweep's pruning); `run_info` adds fields to
    run.json (a sweep's tag: {name, trial, params}). `settles`: this run's exit code is the
    command's (one `dltrain run`, `dltrain resume`): once its records are written, no signal may
    change it (core.signals.settle)."""
    import torch

    deterministic_before = torch.are_deterministic_algorithms_enabled()
    if recipe.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True)
    try:
        return _execute(recipe, runs_root, reporter, argv, batch, resume, callbacks, run_info, settles)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)  # a process-wide switch: put it back


def _execute(recipe: Recipe, runs_root: Path, reporter, argv: list[str] | None, batch: str | None,
             resume, callbacks: tuple, run_info: dict | None, settles: bool) -> RunResult:
    import torch

    from dltrain.components.schedules import LRSchedule
    from dltrain.rundir.lock import RunLock
    from dltrain.train.loop import Clip, Learner, Penalty

    built = build(recipe)  # every recipe and data error is raised before anything is written
    model = built.model
    optimizer = OPTIMIZERS.build(recipe.optimizer, [p for p in model.parameters() if p.requires_grad])
    train_loader = built.loaders["train"]
    steps_per_epoch = -(-len(train_loader) // recipe.train.grad_accumulation)
    warmup = recipe.schedule.warmup_epochs
    main = SCHEDULES.build(recipe.schedule, max(1, recipe.train.epochs - int(warmup)))
    schedule = LRSchedule(optimizer, main, warmup_epochs=warmup, steps_per_epoch=steps_per_epoch)
    clip = Clip(**recipe.clip.model_dump()) if recipe.clip else None
    trained = torch.compile(model) if recipe.train.compile else model
    learner = Learner(trained, built.loss_fn, optimizer, schedule, task=built.data.task,
                      penalty=Penalty(recipe.regularization.l1, recipe.regularization.l2), clip=clip,
                      grad_accumulation=recipe.train.grad_accumulation, precision=recipe.train.precision,
                      log_every=recipe.log.every_steps, generator=built.loaders["generator"],
                      augment=built.augment)  # data.augment: training batches only

    if resume is None:
        run = RunDir(new_run_dir(Path(runs_root), recipe.name))
        lock = RunLock.acquire(run.path)
    else:
        run, lock = resume.run, resume.lock
    try:
        return _train_and_record(run, recipe, built, learner, reporter, argv, resume, batch, callbacks, run_info,
                                 settles)
    finally:
        lock.release()


def _train_and_record(run: RunDir, recipe: Recipe, built: Built, learner, reporter, argv, resume,
                      batch: str | None, extra_callbacks: tuple, run_info: dict | None, settles: bool) -> RunResult:
    from dltrain.core.signals import settle, stop_signals
    from dltrain.features.checkpoints import Checkpointer
    from dltrain.features.early_stopping import EarlyStopping
    from dltrain.features.hparams import HParamsSession
    from dltrain.features.metrics_file import MetricsFile
    from dltrain.features.nonfinite import NonFiniteGuard
    from dltrain.features.tensorboard import TensorBoard
    from dltrain.train.events import FitState

    model = built.model
    started = time.time()
    command = argv if argv is not None else sys.argv
    hparams = HParamsSession(run.path, recipe.to_dict()) if recipe.log.tensorboard else None
    if resume is None:
        run.write_recipe(recipe.to_yaml())
        n_params = sum(p.numel() for p in model.parameters())
        run.update_run_info(
            status=RunStatus.RUNNING, stop_reason=None, name=recipe.name, started=_now(), ended=None,
            device=str(built.device), seed=recipe.seed, command=command,
            versions=_versions(), parameters=n_params, host=socket.gethostname(), pid=os.getpid(),
            data=built.data.describe(), loss=built.loss_name, monitor={"name": built.monitor, "mode": built.mode},
            transfer=built.transfer or None, **({"batch": batch} if batch else {}), **(run_info or {}))
        if hparams is not None:
            hparams.start()  # at the start, so TensorBoard's HParams dashboard lists runs still going
    earlier_wall = 0.0  # wall time of earlier sessions that ended cleanly (a killed one records none)
    if resume is not None:
        earlier_wall = run.info.get("wall_time_s") or 0.0

    callbacks = [NonFiniteGuard()]
    if recipe.log.train_eval:  # first: every later callback (metrics.csv, TensorBoard) sees its columns
        from dltrain.data.loader import ArrayLoader
        from dltrain.features.train_eval import TrainEval
        train = built.loaders["train"]
        callbacks.insert(0, TrainEval(ArrayLoader(train.x, train.y, max(train.batch_size, 1024), shuffle=False)))
    es = recipe.train.early_stopping
    if es is not None:
        callbacks.append(EarlyStopping(es.monitor, es.mode, es.patience, es.min_delta, es.restore_best))
    callbacks.append(MetricsFile(run))
    if recipe.log.tensorboard:
        callbacks.append(TensorBoard(run, histograms=recipe.log.histograms))
    callbacks += extra_callbacks  # a sweep's pruning: it may stop the run, the checkpoint still follows
    callbacks.append(Checkpointer(run, built.monitor, built.mode, built.min_delta))  # after every stateful callback
    if reporter is not None:
        callbacks.append(reporter)
    if recipe.log.diagnostics:  # first: its stop reason (naming the layer that diverged) wins
        from dltrain.diagnostics.probes import fixed_batch
        from dltrain.features.diagnostics import Diagnostics
        callbacks.insert(0, Diagnostics(run, fixed_batch(built.loaders["train"]), recipe.log.diagnostics_every,
                                        tensorboard=recipe.log.tensorboard, model_facts=model_facts(recipe)))
    state = FitState(learner=learner, epochs=recipe.train.epochs, callbacks=callbacks,
                     checkpoint_every_steps=recipe.train.checkpoint_every_steps or 0)
    if resume is not None:
        from dltrain.runner.resume import restore
        restore(state, resume.checkpoint)
        run.update_run_info(status=RunStatus.RUNNING, stop_reason=None, ended=None, host=socket.gethostname(),
                            pid=os.getpid(), resumed=[*run.info.get("resumed", []), {
                                "at": _now(), "checkpoint": resume.source, "epoch": state.epoch,
                                "step": state.step, "command": command}])

    with stop_signals() as request:
        state.stop_request = request
        status, reason, error = _fit(state, learner, built, run)
        request.finishing = True  # from here on a signal is only noted: the records must be written
        test = {}
        if status.finished and built.loaders["test"] is not None:
            test = {f"test_{k}": v for k, v in learner.evaluate(built.loaders["test"]).items()}
        wall = earlier_wall + time.time() - started
        summary = _summary(state, built, test, wall, status)
        run.write_summary(summary)
        # run.json keeps the way on for `dltrain show`; the CLI prints it on a line of its own (views/result.py)
        hint = f"; continue it with: dltrain resume {run.path}" if status is RunStatus.INTERRUPTED else ""
        run.update_run_info(status=status, stop_reason=reason + hint, ended=_now(), wall_time_s=round(wall, 3),
                            error=error)
        if hparams is not None:
            hparams.finish(status, summary)
        # interrupted: the signal's own code (130 or 143)
        exit_code = request.exit_code if status is RunStatus.INTERRUPTED else status.exit_code
        if settles:
            settle(exit_code)
    return RunResult(run, status, reason, summary, exit_code)


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


def model_facts(recipe) -> dict:
    """The model keys divergence advice takes into account; None where the architecture has no such key."""
    def name(key: str) -> str | None:
        spec = getattr(recipe.model, key, None)
        return spec.name if spec is not None else None
    return {"init": name("init"), "activation": name("activation"), "norm": getattr(recipe.model, "norm", None)}
