"""Callbacks that record a run: metrics.csv, TensorBoard event files, checkpoints."""

from __future__ import annotations

import json
import math
import random
import time

import numpy as np
import torch

from dltrain.rundir import RunDir
from dltrain.train.callbacks import Callback, FitState, Monitor, read_metric

CHECKPOINT_FORMAT = 1
SPLIT_METRICS = ("loss", "accuracy", "mae", "rmse")


class MetricsFile(Callback):
    """metrics.csv: one row per epoch, rewritten atomically.

    An epoch's rewrite is not fsynced: fsyncs slow training even from the writer thread
    (bench/background_work.py), and the checkpoint written in the same epoch holds the same rows,
    so `dltrain resume` rebuilds the file after a power cut. The run's end writes it durably."""

    def __init__(self, run: RunDir):
        self.run = run

    def on_fit_start(self, state: FitState) -> None:
        if state.history:  # resumed: drop rows a killed process wrote after its last checkpoint
            self.run.write_metrics(state.history)

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        self.run.write_metrics(state.history, later=True, durable=False)

    def on_fit_end(self, state: FitState) -> None:
        try:
            if state.history:
                self.run.write_metrics(state.history, later=True)  # durable, and the last word on the rows
        finally:
            self.run.wait_for_writes()


class TensorBoard(Callback):
    """Scalars in `train/` and `validation/` writers under the same tags, so TensorBoard overlays
    the two curves on one chart (as Keras does); batch loss every log interval.

    Batch-loss points are handed to the event writer in bursts (at the epoch's end, at a
    checkpoint, or once `BURST_SECONDS` have passed), each with the wall time it was logged at:
    one point at a time wakes TensorBoard's writer thread (whose pure-Python CRC then competes
    with the training thread for the GIL) at every log interval, which measured ~10% of a small
    model's epoch. The events are the same.

    The event files are flushed at an epoch's end once `FLUSH_SECONDS` have passed since the
    last flush (TensorBoard rereads them every 5 s, so a live chart misses nothing), and at the
    run's end: a flush waits for the writer thread, ~0.3 ms an epoch."""

    BURST_SECONDS = 30.0
    FLUSH_SECONDS = 5.0

    def __init__(self, run: RunDir, histograms: bool = False):
        self.run, self.histograms = run, histograms
        self.writers: dict = {}
        self.purge: dict = {}
        self.batch_points: list[tuple[int, float, float]] = []  # (step, mean loss, wall time)
        self.last_burst = self.last_flush = time.monotonic()

    def on_fit_start(self, state: FitState) -> None:
        if state.step:  # resumed: hide points a killed process logged after its last checkpoint
            self.purge = {"train": state.step + 1, "validation": state.epoch + 1}

    def _writer(self, split: str):
        if split not in self.writers:
            from torch.utils.tensorboard import SummaryWriter
            self.writers[split] = SummaryWriter(log_dir=str(self.run.path / split), purge_step=self.purge.get(split))
        return self.writers[split]

    def on_log(self, state: FitState, losses: list[tuple[int, float]]) -> None:
        if losses:
            mean = sum(v for _, v in losses) / len(losses)
            self.batch_points.append((losses[-1][0], mean, time.time()))
            if time.monotonic() - self.last_burst >= self.BURST_SECONDS:
                self._write_batch_points()

    def _write_batch_points(self) -> None:
        if self.batch_points:
            train = self._writer("train")
            for step, mean, walltime in self.batch_points:
                train.add_scalar("batch_loss", mean, step, walltime=walltime)
            self.batch_points.clear()
        self.last_burst = time.monotonic()

    def on_checkpoint(self, state: FitState) -> None:
        self._write_batch_points()  # what precedes a mid-epoch checkpoint is no less kept than before

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        self._write_batch_points()
        train, val = self._writer("train"), self._writer("validation")
        epoch = state.epoch
        for metric in SPLIT_METRICS:
            if f"train_{metric}" in logs:
                train.add_scalar(f"epoch_{metric}", logs[f"train_{metric}"], epoch)
            if f"val_{metric}" in logs:
                val.add_scalar(f"epoch_{metric}", logs[f"val_{metric}"], epoch)
        train.add_scalar("epoch_learning_rate", logs["lr"], epoch)
        for extra in ("grad_norm", "penalty"):
            if extra in logs:
                train.add_scalar(f"epoch_{extra}", logs[extra], epoch)
        if self.histograms:
            for name, param in state.learner.model.named_parameters():
                train.add_histogram(f"weights/{name}", param.detach().float().cpu(), epoch)
        if time.monotonic() - self.last_flush >= self.FLUSH_SECONDS:
            for writer in self.writers.values():
                writer.flush()
            self.last_flush = time.monotonic()

    def on_fit_end(self, state: FitState) -> None:
        self._write_batch_points()  # those of an epoch cut short (diverged, interrupted)
        for writer in self.writers.values():
            writer.close()


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
        "callbacks": {type(cb).__name__: cb.state_dict() for cb in state.callbacks},
        "rng": rng_state(),
    }


class Checkpointer(Callback):
    """checkpoints/last.pt every epoch (and at on_checkpoint: every N steps, or on a stop signal),
    the one it replaces kept as previous.pt; best.pt when the monitored metric improves.
    Never after a divergence: a checkpoint holding non-finite weights is worse than none.
    Put it after every other stateful callback: its snapshot must see their epoch-end updates."""

    LAST, PREVIOUS, BEST = "last.pt", "previous.pt", "best.pt"

    def __init__(self, run: RunDir, monitor: str, mode: str, min_delta: float = 0.0):
        self.run = run
        self.monitor = Monitor(monitor, mode, min_delta)
        self.history = HistoryText()

    def _save_last(self, payload: dict, best: bool = False) -> None:
        # serialized now, written by the run's background writer (on_fit_end waits for it)
        self.run.save_checkpoint(self.LAST, payload, previous=self.PREVIOUS, also=self.BEST if best else None,
                                 later=True)

    def on_checkpoint(self, state: FitState) -> None:
        weights = [p.detach() for p in state.learner.params]
        if weights and not bool(torch.stack([torch.isfinite(w).all() for w in weights]).all()):
            return  # one host sync, only at checkpoint time; the non-finite guard ends the run
        self._save_last(checkpoint_state(state, self.history))

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        if not all(math.isfinite(v) for k, v in logs.items() if k.endswith("loss")):
            return  # the non-finite guard stops this run; keep the last good checkpoint
        improved = self.monitor.update(read_metric(logs, self.monitor.name), state.epoch)
        self._save_last(checkpoint_state(state, self.history), best=improved)

    def on_fit_end(self, state: FitState) -> None:
        self.run.wait_for_writes()  # a stop signal's checkpoint is on disk before the process exits

    def state_dict(self) -> dict:
        return {"monitor": self.monitor.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.monitor.load_state_dict(state["monitor"])
