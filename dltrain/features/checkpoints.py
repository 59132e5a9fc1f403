"""Callbacks that record a run: metrics.csv, TensorBoard event files, checkpoints."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import torch

from dltrain.rundir import layout
from dltrain.rundir.writer import RunDir
from dltrain.train.events import Callback, FitState, Monitor, read_metric, state_name

CHECKPOINT_FORMAT = 1


def rng_state() -> dict:
    np_state = np.random.get_state()
    version, words, gauss = random.getstate()
    # python's 625 state words as one tensor: as 625 ints they were most of a checkpoint's pickling time
    python = {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss": gauss}
    state = {"torch": torch.get_rng_state(), "python": python,
             "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    python = state["python"]
    if isinstance(python, dict):
        python = (python["version"], tuple(python["words"].tolist()), python["gauss"])
    random.setstate(python)  # a tuple: a checkpoint written before the words became a tensor
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class HistoryText:
    """The epoch history as one JSON string, for checkpoints. As a list of dicts, its keys and
    numbers were most of a checkpoint's pickling time, growing with every epoch; JSON writes a
    float in its shortest round-tripping form (NaN and infinities included), so a resumed run
    reads back the very same numbers. Rows encoded once are kept, matched by identity."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.parts: list[str] = []

    def encode(self, rows: list[dict]) -> str:
        known = len(self.rows)
        if len(rows) < known or any(a is not b for a, b in zip(rows, self.rows)):
            self.rows, self.parts, known = [], [], 0
        self.parts += [json.dumps(row) for row in rows[known:]]
        self.rows = list(rows)
        return "[" + ",".join(self.parts) + "]"


def decode_history(history: str | list) -> list[dict]:
    """A checkpoint's history: JSON text, or a list of dicts (checkpoints written before HistoryText)."""
    return json.loads(history) if isinstance(history, str) else list(history)


def checkpoint_state(state: FitState, history: HistoryText | None = None) -> dict:
    """Everything needed to continue exactly: plain containers of tensors and numbers (and the
    history as JSON text) only. `progress` is the position within the epoch for a mid-epoch
    checkpoint, None at an epoch's end."""
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": state.epoch, "step": state.step,
        "progress": state.progress.state_dict() if state.progress is not None else None,
        "history": (history or HistoryText()).encode(state.history),
        "learner": state.learner.state_dict(),
        "callbacks": {state_name(cb): cb.state_dict() for cb in state.callbacks},
        "rng": rng_state(),
    }


class Checkpointer(Callback):
    """checkpoints/last.pt on a time budget: at the first epoch's end or optimizer step (the loop's
    checkpoint_due) after `train.checkpoint_interval` seconds since the last one (every epoch's
    end when it is 0), every `train.checkpoint_every_steps` steps when set, on a stop signal, and
    at the run's end (the loop's final on_checkpoint); the one it replaces kept as previous.pt.
    best.pt holds the best epoch's weights: when the monitored metric improves at an epoch that is
    not checkpointed, a copy of the weights is kept in memory and written with the next checkpoint
    (the same file as last.pt when the best epoch is the checkpointed one).
    Never after a divergence: a checkpoint holding non-finite weights is worse than none.
    Put it after every other stateful callback: its snapshot must see their epoch-end updates."""

    def __init__(self, run: RunDir, monitor: str, mode: str, min_delta: float = 0.0):
        self.run = run
        self.monitor = Monitor(monitor, mode, min_delta)
        self.history = HistoryText()
        self.best: dict | None = None  # the best epoch's weights not yet in best.pt (from best_copy)
        self.best_copy = BestCopy()
        self.saved: tuple[int, int] | None = None  # (epoch, step) last.pt was written at

    def on_fit_start(self, state: FitState) -> None:
        state.checkpoint_written()  # the first interval counts from the start of training

    def _save(self, state: FitState) -> None:
        # serialized now, written by the run's background writer (on_fit_end waits for it)
        best_is_now = (self.best is not None and state.progress is None
                       and (self.best["epoch"], self.best["step"]) == (state.epoch, state.step))
        if self.best is not None and not best_is_now:
            self.run.save_checkpoint(layout.BEST, self.best, later=True)
        self.best = None
        self.run.save_checkpoint(layout.LAST, checkpoint_state(state, self.history), previous=layout.PREVIOUS,
                                 also=layout.BEST if best_is_now else None, later=True)
        self.saved = (state.epoch, state.step)
        state.checkpoint_written()

    def on_checkpoint(self, state: FitState) -> None:
        if self.saved == (state.epoch, state.step):
            return  # the final checkpoint of a run whose last epoch's end wrote one
        weights = [p.detach() for p in state.learner.params]
        if weights and not bool(torch.stack([torch.isfinite(w).all() for w in weights]).all()):
            return  # one host sync, only at checkpoint time; the non-finite guard ends the run
        self._save(state)

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        if not all(math.isfinite(v) for k, v in logs.items() if k.endswith("loss")):
            return  # the non-finite guard stops this run; keep the last good checkpoint
        if self.monitor.update(read_metric(logs, self.monitor.name), state.epoch):
            self.best = self.best_copy.take(state)
        if state.epoch_checkpoint_due():
            self._save(state)

    def on_fit_end(self, state: FitState) -> None:
        if self.best is not None:  # a run that ends without a final checkpoint (diverged, failed) keeps its best
            self.run.save_checkpoint(layout.BEST, self.best, later=True)
            self.best = None
        self.run.wait_for_writes()  # a stop signal's checkpoint is on disk before the process exits

    def state_dict(self) -> dict:
        return {"monitor": self.monitor.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.monitor.load_state_dict(state["monitor"])


class BestCopy:
    """best.pt's content when it is not last.pt's: the epoch and a copy of its weights, on the
    training device. The copy goes into buffers kept from the last one (one foreach copy: no
    state_dict() walk, no allocation), since an improving run improves at most epochs."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.live: list[torch.Tensor] = []
        self.saved: list[torch.Tensor] = []

    def take(self, state: FitState) -> dict:
        if not self.names:  # a module's state tensors keep their identity: walk it once
            weights = state.learner.module.state_dict(keep_vars=False)
            self.names, self.live = list(weights), [t.detach() for t in weights.values()]
            self.saved = [t.clone() for t in self.live]
        else:
            torch._foreach_copy_(self.saved, self.live)
        return {"format": CHECKPOINT_FORMAT, "epoch": state.epoch, "step": state.step,
                "learner": {"model": dict(zip(self.names, self.saved))}}
