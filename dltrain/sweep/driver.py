"""`dltrain sweep`: check everything, plan the study's trials, run workers, show the results.

Order matters for truthfulness: every recipe problem is raised before the storage is touched
(nothing written); a study is planned before any trial runs; each worker claims planned trials
until none is left, so K workers, or several `dltrain sweep` processes on several machines
sharing a postgresql:// storage, run each planned trial exactly once.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from dltrain.components.search import METHODS, PRUNERS
from dltrain.core.errors import DataError, Problem, RecipeError, UsageError
from dltrain.core.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS, SPLITS
from dltrain.core.status import Exit, RunStatus
from dltrain.core.words import plural
from dltrain.recipe.load import load_document, load_recipe, validate_document
from dltrain.recipe.sweep import SweepSpec
from dltrain.sweep import study as studies


@dataclass(frozen=True)
class WorkerJob:
    """What a worker process needs (plain data: it crosses a process boundary)."""

    doc: dict  # the recipe document, overrides applied, `sweep` included
    source: str
    study_name: str
    storage_url: str
    runs_root: Path
    worker: int
    threads: int | None  # torch threads for this process; None: leave torch's default
    argv: list
    created: bool  # this process created the study (its sampler streams are then reproducible)


def run_sweep(recipe_path: Path, overrides: list[str], runs_root: Path, *, plot: bool, console,
              argv: list[str]) -> int:
    import optuna
    from optuna.trial import TrialState

    from dltrain.sweep.results import report

    recipe = load_recipe(recipe_path, overrides)
    if recipe.sweep is None:
        raise UsageError(f"{recipe_path} has no `sweep:` section (see docs/sweeps.md); `dltrain run` trains it once")
    doc, _ = load_document(recipe_path, overrides)
    spec = recipe.sweep
    epochs = _check_runnable(doc, spec, str(recipe_path))
    name = spec.name or f"{recipe.name}-{spec.method.name}"
    url = studies.storage_url(spec.storage, runs_root)
    storage = studies.open_storage(url)
    study, created, queued = _open_and_plan(storage, name, spec, recipe, studies.shown_url(url))
    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    workers = max(1, min(spec.workers, waiting))
    threads = _threads_per_worker(workers) if workers > 1 else None
    console.print(f"sweep `{name}` ({spec.method.name}, pruner {spec.pruner.name}, {plural(spec.trials, 'trial')} x "
                  f"{plural(spec.seeds, 'seed')} x {plural(epochs, 'epoch')}) in {studies.shown_url(url)}: "
                  f"{'new study' if created else 'continuing'}, {plural(queued, 'trial')} planned now, "
                  f"{waiting} waiting; {plural(workers, 'worker')}" + (f" x {plural(threads, 'torch thread')}" if threads else ""),
                  markup=False, soft_wrap=True)
    job = WorkerJob(doc, str(recipe_path), name, url, Path(runs_root), 0, threads, list(argv), created)
    interrupted = _run_workers(job, workers) if waiting else False
    study = optuna.load_study(study_name=name, storage=storage)
    code = report(console, study, spec, doc, runs_root=Path(runs_root), plot=plot, source=str(recipe_path),
                  epochs=epochs)
    return Exit.SIGINT if interrupted else code


def _open_and_plan(storage, name: str, spec: SweepSpec, recipe, where: str):
    """(study, created, queued): create and plan a new study, or check and top up an existing one."""
    import optuna

    study, created = studies.open_study(storage, name, "minimize" if spec.mode == "min" else "maximize")
    fingerprint = spec.fingerprint()
    base = {k: v for k, v in recipe.to_dict().items() if k != "sweep"}
    points = spec.grid_points() if spec.method.name == "grid" else [{}] * spec.trials
    if created:
        queued = studies.plan(study, points)
        for key, value in ((studies.RECIPE, base), (studies.SPACE, fingerprint)):  # SPACE last: "planned"
            study.set_user_attr(key, value)
        return study, True, queued
    studies.wait_until_planned(study)
    studies.check_fingerprint(study, fingerprint, base, where)
    optuna.storages.fail_stale_trials(study)  # trials of killed workers: failed, then planned again
    return study, False, studies.plan(study, points)


def _check_runnable(doc: dict, spec: SweepSpec, source: str) -> int:
    """Build the base recipe once (data, model) and check the metric is recorded: bad input fails here,
    before any study or run exists. Returns the epochs of one run."""
    from dltrain.builder.objects import build

    recipe = validate_document({k: v for k, v in doc.items() if k != "sweep"}, source=source)
    built = build(recipe)
    split, _, metric = spec.metric.partition("_")
    recorded = CLASSIFICATION_METRICS if built.data.task == "classification" else REGRESSION_METRICS
    if metric not in recorded:
        names = ", ".join(f"{s}_{m}" for s in SPLITS for m in recorded)
        raise RecipeError([Problem("sweep.metric", f"`{spec.metric}` is not recorded for a {built.data.task} task "
                                   f"(recorded: {names})")], source)
    if split == "val" and built.data.val is None:
        raise RecipeError([Problem("sweep.metric", f"`{spec.metric}` needs a validation split, but "
                                   "data.val_fraction is 0")], source)
    return recipe.train.epochs


def _threads_per_worker(workers: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers)  # workers x threads <= cores: no oversubscription


def _run_workers(job: WorkerJob, workers: int) -> bool:
    """Run the trial queue dry with `workers` processes (in this process when 1). True if interrupted."""
    if workers == 1:
        try:
            return work(job) == Exit.SIGINT
        except KeyboardInterrupt:  # between trials: nothing to record
            return True
    # spawn, not fork: this process has torch (and its thread pools) loaded already
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker_main, args=(_replace(job, worker=i),), name=f"dltrain-sweep-{i}")
                 for i in range(workers)]
    for process in processes:
        process.start()
    interrupted = False
    for process in processes:
        while True:
            try:
                process.join()
                break
            except KeyboardInterrupt:  # the workers got the same SIGINT; let them record it
                interrupted = True
    for process in processes:
        if process.exitcode not in (Exit.OK, Exit.SIGINT):  # its running trial goes stale and is planned again
            print(f"warning: worker process {process.name} ended with exit code {process.exitcode}", file=sys.stderr)
    return interrupted or any(p.exitcode == Exit.SIGINT for p in processes)


def _replace(job: WorkerJob, **changes) -> WorkerJob:
    return WorkerJob(**{**job.__dict__, **changes})


def _worker_main(job: WorkerJob) -> None:
    try:
        sys.exit(work(job))
    except KeyboardInterrupt:  # between trials: nothing to record
        sys.exit(Exit.SIGINT)


def work(job: WorkerJob) -> int:
    """Claim and run planned trials until none is left. A failed trial is recorded and the next one runs."""
    import socket

    import numpy as np
    from optuna.trial import TrialState

    if job.threads is not None:
        import torch
        torch.set_num_threads(job.threads)
    recipe = validate_document(job.doc, source=job.source)
    spec = recipe.sweep
    storage = studies.open_storage(job.storage_url)
    direction = "minimize" if spec.mode == "min" else "maximize"
    planned = len(storage.get_all_trials(storage.get_study_id_from_name(job.study_name), deepcopy=False))
    # A distinct sampler stream per worker and per continuation (more trials planned each time);
    # reproducible for the process that created the study, fresh entropy for any process joining it
    # (another machine would otherwise propose the very same configurations).
    entropy = [recipe.seed, job.worker, planned]
    if not job.created:
        entropy += [os.getpid(), *socket.gethostname().encode()]
    seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    sampler = METHODS.build(spec.method, seed, spec.grid_values())
    pruner = PRUNERS.build(spec.pruner, spec.seeds * recipe.train.epochs)
    study = studies.open_study(storage, job.study_name, direction, sampler, pruner)[0]
    while (claimed := studies.claim(study, storage)) is not None:
        trial, trial_id = claimed
        if studies.is_surplus(study, trial):
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            continue
        with studies.Heartbeat(storage, trial_id):
            try:
                outcome = _run(trial, spec, job)
            except KeyboardInterrupt:
                trial.set_user_attr("interrupted", True)  # not counted: a re-run plans this slot again
                study.tell(trial, state=TrialState.FAIL)
                print(f"trial {trial.number}: interrupted; re-run the sweep to continue it", flush=True)
                return Exit.SIGINT
        _record(study, trial, outcome)
        _print_trial(trial.number, spec, outcome, spec.decode(trial.params))
    return Exit.OK


def _run(trial, spec: SweepSpec, job: WorkerJob):
    from dltrain.sweep.trial import Outcome, run_trial
    try:
        return run_trial(trial, spec, job.doc, study_name=job.study_name, runs_root=job.runs_root, argv=job.argv,
                         source=job.source)
    except (RecipeError, DataError) as err:  # a combination no single value could reveal
        reason = "; ".join(map(str, err.problems)) if isinstance(err, RecipeError) else str(err)
        return Outcome(RunStatus.FAILED, reason=f"{type(err).__name__}: {reason}")
    except Exception as exc:  # record it and go on with the sweep
        return Outcome(RunStatus.FAILED, reason=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")


def _record(study, trial, outcome) -> None:
    from optuna.trial import TrialState
    trial.set_user_attr("runs", outcome.runs)
    trial.set_user_attr("epochs", outcome.epochs)
    if outcome.state is RunStatus.COMPLETED:
        trial.set_user_attr("scores", outcome.scores)
        trial.set_user_attr("std", outcome.std)
        study.tell(trial, outcome.value)
    elif outcome.state is RunStatus.PRUNED:
        trial.set_user_attr("reason", outcome.reason)
        study.tell(trial, state=TrialState.PRUNED)
    else:
        trial.set_user_attr("error", outcome.reason or "failed")
        study.tell(trial, state=TrialState.FAIL)


def _print_trial(number: int, spec: SweepSpec, outcome, values: dict) -> None:
    from dltrain.sweep.results import format_params
    if outcome.state is RunStatus.COMPLETED:
        spread = f" +- {outcome.std:.4g} ({spec.seeds} seeds)" if spec.seeds > 1 else ""
        what = f"{spec.metric} {outcome.value:.4f}{spread}"
    else:
        what = outcome.reason.splitlines()[0] if outcome.reason else ""
    where = f"  {outcome.runs[-1]}" if outcome.runs else ""
    print(f"trial {number} {outcome.state}: {what} ({plural(outcome.epochs, 'epoch')})  {format_params(values)}{where}",
          flush=True)
