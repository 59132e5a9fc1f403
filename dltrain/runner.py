"""From a validated Recipe to built objects, and from built objects to a finished run directory."""

from __future__ import annotations

import datetime as dt
import os
import platform
import random
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from dltrain import __version__
from dltrain.components import LOSSES, OPTIMIZERS, SCHEDULES
from dltrain.components.losses import CLASSIFICATION, REGRESSION
from dltrain.data import DataBundle, prepare
from dltrain.errors import Problem, RecipeError
from dltrain.recipe import CLASSIFICATION_METRICS, REGRESSION_METRICS, Recipe, default_mode
from dltrain.rundir import RunDir, new_run_dir

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGED, EXIT_SIGINT = 0, 1, 2, 3, 130


@dataclass
class Built:
    """Everything a run needs, built from the recipe (the loop never sees the recipe)."""

    recipe: Recipe
    device: object
    data: DataBundle
    model: object
    loss_name: str
    loss_fn: object
    monitor: str
    mode: str
    loaders: dict = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str):
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RecipeError([Problem("device", f"`{name}` asked for, but CUDA is not available on this machine; "
                                       "expected auto or cpu here")])
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise RecipeError([Problem("device", f"`{name}`: this machine has {torch.cuda.device_count()} CUDA device(s)")])
    if name == "mps" and not torch.backends.mps.is_available():
        raise RecipeError([Problem("device", "`mps` asked for, but Apple's MPS backend is not available here")])
    return torch.device(name)


def _task_checks(recipe: Recipe, data: DataBundle) -> tuple[str, str, str]:
    """Checks that need to know the task: loss, monitored metric, precision. Returns (loss, monitor, mode)."""
    problems = []
    loss_name = recipe.loss.name if recipe.loss is not None else (
        "cross_entropy" if data.task == "classification" else "mse")
    fits = CLASSIFICATION if data.task == "classification" else REGRESSION
    if loss_name not in fits:
        problems.append(Problem("loss", f"`{loss_name}` is a {'regression' if loss_name in REGRESSION else 'classification'} "
                                f"loss, but `{recipe.data.name}` is a {data.task} task; expected one of: {', '.join(sorted(fits))}"))
    if loss_name == "bce" and data.task == "classification" and data.num_classes != 2:
        problems.append(Problem("loss", f"`bce` needs exactly 2 classes; this data has {data.num_classes} "
                                "(use cross_entropy, or data.classes to keep two)"))
    metrics = CLASSIFICATION_METRICS if data.task == "classification" else REGRESSION_METRICS
    es = recipe.train.early_stopping
    monitor, mode = (es.monitor, es.mode) if es else (("val_loss" if data.val else "train_loss"), "min")
    watched = [("train.early_stopping.monitor", monitor)] if es else []
    if recipe.schedule.name == "plateau":
        watched.append(("schedule.monitor", recipe.schedule.monitor))
    for key, name in watched:
        split, _, metric = name.partition("_")
        if metric not in metrics:
            problems.append(Problem(key, f"`{name}` is not recorded for a {data.task} task "
                                    f"(recorded: {', '.join(f'{s}_{m}' for s in ('train', 'val') for m in metrics)})"))
        elif split == "val" and data.val is None:
            problems.append(Problem(key, f"`{name}` needs a validation split, but data.val_fraction is 0"))
    if problems:
        raise RecipeError(problems)
    return loss_name, monitor, mode


def build(recipe: Recipe) -> Built:
    """Data, model and loss for a recipe (the optimizer is made in `execute`). Raises RecipeError/DataError."""
    import torch
    from dltrain.models.build import build_model, output_size

    device = resolve_device(recipe.device)
    seed_everything(recipe.seed)
    data = prepare(recipe.data, recipe.seed)
    loss_name, monitor, mode = _task_checks(recipe, data)
    if recipe.train.precision == "fp16" and device.type != "cuda":
        raise RecipeError([Problem("train.precision", "fp16 mixed precision needs a CUDA device; use bf16 on the CPU")])
    seed_everything(recipe.seed)  # model init does not depend on how much randomness the data used
    outputs = output_size(data.task, data.num_classes, data.target_dim, loss_name)
    model = build_model(recipe.model, data.input_shape, outputs).to(device)
    loss_spec = recipe.loss or LOSSES.entry(loss_name).model(name=loss_name)
    loss_fn = LOSSES.build(loss_spec).to(device)
    built = Built(recipe, device, data, model, loss_name, loss_fn, monitor, mode)
    built.loaders = _loaders(data, device, recipe.seed)
    return built


def _loaders(data: DataBundle, device, seed: int) -> dict:
    import torch
    from dltrain.data.loader import ArrayLoader

    def tensors(split):
        x = torch.from_numpy(split.x).to(device)
        y = torch.from_numpy(split.y).to(device)
        return x, y

    generator = torch.Generator().manual_seed(seed + 1)  # data order: its own stream, saved with checkpoints
    loaders = {"train": ArrayLoader(*tensors(data.train), data.batch_size, shuffle=True, generator=generator),
               "generator": generator}
    eval_batch = max(data.batch_size, 1024)  # evaluation has no gradients: bigger batches are free
    for name in ("val", "test"):
        split = getattr(data, name)
        loaders[name] = ArrayLoader(*tensors(split), eval_batch, shuffle=False) if split is not None else None
    return loaders


@dataclass
class RunResult:
    run: RunDir
    status: str
    reason: str
    summary: dict
    exit_code: int


def _versions() -> dict:
    import torch
    return {"python": platform.python_version(), "torch": torch.__version__, "dltrain": __version__}


def execute(recipe: Recipe, runs_root: Path, *, reporter=None, argv: list[str] | None = None) -> RunResult:
    """Build, create the run directory, train, test, and write the summary."""
    import torch
    from dltrain.components.schedules import LRSchedule
    from dltrain.train.callbacks import EarlyStopping, FitState, NonFiniteGuard
    from dltrain.train.loop import Clip, Learner, Penalty, fit
    from dltrain.train.records import Checkpointer, MetricsFile, TensorBoard

    if recipe.train.deterministic:
        torch.use_deterministic_algorithms(True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
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
                      log_every=recipe.log.every_steps, generator=built.loaders["generator"])

    run = RunDir(new_run_dir(Path(runs_root), recipe.name))
    run.write_recipe(recipe.to_yaml())
    n_params = sum(p.numel() for p in model.parameters())
    started = time.time()
    run.update_run_info(
        status="running", stop_reason=None, name=recipe.name, started=_now(), ended=None,
        device=str(built.device), seed=recipe.seed, command=argv if argv is not None else sys.argv,
        versions=_versions(), parameters=n_params, host=socket.gethostname(), pid=os.getpid(),
        data=built.data.describe(), loss=built.loss_name, monitor={"name": built.monitor, "mode": built.mode})

    callbacks = [NonFiniteGuard()]
    es = recipe.train.early_stopping
    if es is not None:
        callbacks.append(EarlyStopping(es.monitor, es.mode, es.patience, es.min_delta, es.restore_best))
    callbacks += [Checkpointer(run, built.monitor, built.mode), MetricsFile(run)]
    if recipe.log.tensorboard:
        callbacks.append(TensorBoard(run, histograms=recipe.log.histograms))
    if reporter is not None:
        callbacks.append(reporter)
    if recipe.log.diagnostics:  # first: its stop reason (naming the layer that diverged) wins
        from dltrain.diagnostics import Diagnostics
        from dltrain.diagnostics.commands import fixed_batch
        callbacks.insert(0, Diagnostics(run, fixed_batch(built.loaders["train"]), recipe.log.diagnostics_every,
                                        tensorboard=recipe.log.tensorboard))
    state = FitState(learner=learner, epochs=recipe.train.epochs, callbacks=callbacks)

    error = None
    try:
        fit(learner, train_loader, built.loaders["val"], state)
    except KeyboardInterrupt:
        status, reason = "interrupted", f"interrupted by the user at epoch {state.epoch + 1}, step {state.step}"
    except Exception as exc:  # the run directory must say how it failed
        error = traceback.format_exc()
        status, reason = "failed", f"{type(exc).__name__}: {exc}"
        (run.path / "error.txt").write_text(error, encoding="utf-8")
    else:
        status, reason = state.stop.status, state.stop.reason

    test = {}
    if status in ("completed", "early_stopped") and built.loaders["test"] is not None:
        test = {f"test_{k}": v for k, v in learner.evaluate(built.loaders["test"]).items()}
    summary = _summary(state, built, test, time.time() - started, status)
    run.write_summary(summary)
    run.update_run_info(status=status, stop_reason=reason, ended=_now(), wall_time_s=round(time.time() - started, 3),
                        error=error)
    exit_code = {"completed": EXIT_OK, "early_stopped": EXIT_OK, "diverged": EXIT_DIVERGED,
                 "interrupted": EXIT_SIGINT}.get(status, EXIT_FAILED)
    return RunResult(run, status, reason, summary, exit_code)


def _summary(state, built: Built, test: dict, wall: float, status: str) -> dict:
    history = state.history
    monitor, mode = built.monitor, built.mode
    scored = [row for row in history if monitor in row]
    best_row = None
    if scored:
        pick = min if mode == "min" else max
        best_row = pick(scored, key=lambda r: r[monitor])

    def split(row, prefix):
        return {k: v for k, v in (row or {}).items() if k.startswith(prefix)}

    return {
        "status": status,
        "epochs": state.epoch,
        "steps": state.step,
        "monitor": monitor,
        "mode": mode,
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
