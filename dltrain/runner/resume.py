"""`dltrain resume RUN`: continue an interrupted, killed or failed run from its last good checkpoint.

A checkpoint restores everything the run's future depends on: model, optimizer, schedule, the
grad scaler, every callback's state (early stopping's counter and best weights, the best-metric
tracker), the history, epoch, step, the position within the epoch (mid-epoch checkpoints), the
data-order generator and the torch, numpy and python RNGs. On the CPU with
`train.deterministic: true` the resumed run ends with the same parameters and metrics as the
run would have had uninterrupted.

Checkpoints are read with torch.load(weights_only=True) only. When checkpoints/last.pt cannot be
read (truncated, corrupt, refused), checkpoints/previous.pt is used, with a warning.

`dltrain resume RUN train.epochs=N` extends a run to N epochs, a completed or early-stopped one
included: the one override resume takes, since any other would change what the checkpoint was
trained as. recipe.yaml then says N, and run.json's `resumed` entry records the change. An
early-stopped run continues from its last checkpoint with early stopping's patience counted afresh
(otherwise the first epoch without improvement would stop it again).
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
    extended: dict | None = None  # {"epochs_from": planned before, "epochs_to": N} for train.epochs=N


EXTENSION_KEY = ("train", "epochs")


def extension_override(overrides: list[str]) -> str | None:
    """The one override resume takes, `train.epochs=N`, or None. Any other key is refused (exit 2):
    the checkpoint was trained with the recipe as it is."""
    from dltrain.core.errors import Problem, RecipeError
    from dltrain.recipe.load import parse_override

    problems, found = [], None
    for text in overrides:
        keys, _ = parse_override(text)
        if tuple(keys) == EXTENSION_KEY:
            found = text
            continue
        key = ".".join(keys)
        problems.append(Problem(key, f"resume takes only `train.epochs=N` (more epochs for the same run); "
                                f"changing `{key}` would change what was trained: start a new run with "
                                f"`dltrain run` instead", f"command line: {text}"))
    if problems:
        raise RecipeError(problems)
    return found


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


def prepare_resume(run_path: Path, runs_root: Path, epochs: str | None = None) -> tuple[ResumePoint, object]:
    """Find and lock the run, check that it can be continued, load its recipe and checkpoint.
    `epochs`: a `train.epochs=N` override (extension_override), which also lets a completed or
    early-stopped run continue. Returns (ResumePoint, Recipe). The lock is released again if
    anything here fails; otherwise it is the caller's to release (`with point.lock:`), once the
    resumed run is over."""
    from dltrain.recipe.load import load_recipe
    from dltrain.rundir.reader import find_run

    run = RunDir(find_run(str(run_path), Path(runs_root)).path)
    lock = RunLock.acquire(run.path)  # before reading anything: a live run may be writing it
    try:
        info = read_json(run.info_file)
        status = RunStatus.read(info.get("status"))
        if not status.resumable and not (status.finished and epochs is not None):
            # the command on a line of its own, so it can be copied
            more = (f"; extend it to N epochs with:\n  dltrain resume {run.path} train.epochs=N"
                    if status.finished else "")
            raise UsageError(f"{run.path} cannot be resumed: {status.final_because}{more}")
        recipe = load_recipe(run.recipe_file)
        planned = recipe.train.epochs
        if epochs is not None:
            recipe = load_recipe(run.recipe_file, [epochs])
        checkpoint, source = latest_checkpoint(run)
        extended = None
        if epochs is not None:
            _check_extension(run, status, checkpoint, recipe.train.epochs, epochs)
            extended = {"epochs_from": planned, "epochs_to": recipe.train.epochs}
            if status is RunStatus.EARLY_STOPPED:
                _fresh_patience(checkpoint)
    except BaseException:
        lock.release()
        raise
    remove_temp_files(run.path)
    run.info = info
    return ResumePoint(run, lock, checkpoint, source, extended), recipe


def _check_extension(run: RunDir, status: RunStatus, checkpoint: dict, epochs: int, text: str) -> None:
    """N must be more than the epochs the run has trained (a finished run: as its summary says)."""
    from dltrain.core.errors import Problem, RecipeError

    trained = checkpoint["epoch"]
    if status.finished and run.summary_file.is_file():
        trained = max(trained, read_json(run.summary_file).get("epochs") or 0)
    if epochs <= trained:
        raise RecipeError([Problem("train.epochs", f"the run has trained {plural(trained, 'epoch')}; expected more "
                                   f"than {trained}, got {epochs}", f"command line: {text}")])


def _fresh_patience(checkpoint: dict) -> None:
    """Early stopping's count of epochs without improvement back to 0: the extension gets its patience."""
    saved = checkpoint["callbacks"].get("early_stopping")
    if isinstance(saved, dict) and "bad_epochs" in saved:
        saved["bad_epochs"] = 0


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
