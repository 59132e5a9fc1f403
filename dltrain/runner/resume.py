"""`dltrain resume RUN`: continue an interrupted, killed or failed run from its last good checkpoint.

A checkpoint restores everything the run's future depends on: model, optimizer, schedule, the
grad scaler, every callback's state (early stopping's counter and best weights, the best-metric
tracker), the history, epoch, step, the position within the epoch (mid-epoch checkpoints), the
data-order generator and the torch, numpy and python RNGs. On the CPU with
`train.deterministic: true` the resumed run ends with the same parameters and metrics as the
run would have had uninterrupted.

Checkpoints are read with torch.load(weights_only=True) only. When checkpoints/last.pt cannot be
read (truncated, corrupt, refused), checkpoints/previous.pt is used, with a warning.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from dltrain.core.errors import UsageError
from dltrain.core.status import RunStatus
from dltrain.rundir import layout
from dltrain.core.words import plural
from dltrain.rundir.lock import RunLock
from dltrain.rundir.writer import RunDir, load_checkpoint, read_json

CHECKPOINT_KEYS = ("format", "epoch", "step", "history", "learner", "callbacks", "rng")


class CheckpointError(UsageError):
    """No checkpoint of the run can be used. Exit code 2."""


@dataclass
class ResumePoint:
    """A locked run directory and the checkpoint it continues from."""

    run: RunDir
    lock: RunLock
    checkpoint: dict
    source: str  # which file: last.pt or previous.pt


def read_checkpoint(path: Path) -> dict:
    """Load one checkpoint file (weights_only) and check it is a dltrain checkpoint."""
    import pickle
    import warnings

    from dltrain.features.checkpoints import CHECKPOINT_FORMAT

    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of files it then refuses
            state = load_checkpoint(path)
    except pickle.UnpicklingError as exc:  # weights_only found something other than plain data
        detail = _gist(str(exc))
        if "GLOBAL" in detail:  # a reference to a function or class: what a code-running pickle needs
            raise CheckpointError(f"{path}: refused: it refers to code, not just tensors and numbers, and "
                                  f"loading it could run that code ({detail})") from None
        raise CheckpointError(f"{path}: unreadable: not a checkpoint, or corrupt ({detail})") from None
    except Exception as exc:  # truncated zip, bad magic number, I/O error: torch raises many kinds
        raise CheckpointError(f"{path}: unreadable: truncated or corrupt ({type(exc).__name__}: "
                              f"{_gist(str(exc)) or 'unexpected end of file'})") from None
    if not isinstance(state, dict) or any(key not in state for key in CHECKPOINT_KEYS):
        raise CheckpointError(f"{path}: not a dltrain checkpoint (expected the keys {', '.join(CHECKPOINT_KEYS)})")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {state['format']}; this dltrain reads format "
                              f"{CHECKPOINT_FORMAT}")
    return state


def _gist(message: str) -> str:
    """The informative line of torch's long load errors (they open with advice about weights_only)."""
    boiler = ("Weights only load failed", "Please file an issue", "Check the documentation", "WeightsUnpickler error")
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(boiler)]
    return (useful or lines or [""])[0].split(". ")[0].rstrip(".")


def latest_checkpoint(run: RunDir) -> tuple[dict, str]:
    """last.pt, else previous.pt (with a warning saying why). CheckpointError when neither loads."""
    problems = []
    for name in (layout.LAST, layout.PREVIOUS):
        try:
            state = read_checkpoint(run.checkpoints / name)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        for problem in problems:
            print(f"warning: {problem}; using {layout.CHECKPOINTS}/{name} (epoch {state['epoch']}, step {state['step']})",
                  file=sys.stderr)
        return state, name
    raise CheckpointError(f"no usable checkpoint in {run.path}:\n  " + "\n  ".join(problems))


def prepare_resume(run_path: Path, runs_root: Path) -> tuple[ResumePoint, object]:
    """Find and lock the run, check that it can be continued, load its recipe and checkpoint.
    Returns (ResumePoint, Recipe). The lock is released again if anything here fails; otherwise it
    is the caller's to release (`with point.lock:`), once the resumed run is over."""
    from dltrain.recipe.load import load_recipe
    from dltrain.rundir.reader import find_run

    run = RunDir(find_run(str(run_path), Path(runs_root)).path)
    lock = RunLock.acquire(run.path)  # before reading anything: a live run may be writing it
    try:
        info = read_json(run.info_file)
        status = RunStatus.read(info.get("status"))
        if not status.resumable:
            raise UsageError(f"{run.path} cannot be resumed: {status.final_because}")
        recipe = load_recipe(run.recipe_file)
        checkpoint, source = latest_checkpoint(run)
    except BaseException:
        lock.release()
        raise
    remove_temp_files(run.path)
    run.info = info
    return ResumePoint(run, lock, checkpoint, source), recipe


def remove_temp_files(folder: Path) -> list[Path]:
    """Temp files of writes a killed process never finished (never valid data; the run is locked)."""
    leftovers = [p for p in folder.rglob(".*.tmp") if p.is_file()]
    for path in leftovers:
        path.unlink()
    if leftovers:
        print(f"note: removed {plural(len(leftovers), 'unfinished temporary file')} left by a killed process", file=sys.stderr)
    return leftovers


def restore(state, checkpoint: dict) -> None:
    """Put a FitState (learner and callbacks included) back where the checkpoint left it."""
    from dltrain.features.checkpoints import decode_history, set_rng_state
    from dltrain.features.registry import FEATURES
    from dltrain.train.events import state_name
    from dltrain.train.position import EpochProgress

    learner = state.learner
    try:
        learner.load_state_dict(checkpoint["learner"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint does not fit the model and optimizer built from recipe.yaml "
                              f"(was the recipe edited?): {exc}") from None
    state.epoch, state.step = checkpoint["epoch"], checkpoint["step"]
    state.history = decode_history(checkpoint["history"])
    for cb in state.callbacks:
        saved = FEATURES.saved_state(checkpoint["callbacks"], state_name(cb))  # or under its old class name
        if saved is not None:
            cb.load_state_dict(saved)
    progress = checkpoint.get("progress")
    state.progress = EpochProgress.from_state(progress, learner) if progress is not None else None
    set_rng_state(checkpoint["rng"])  # last: nothing after this may draw random numbers before training
