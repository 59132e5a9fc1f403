"""What dltrain's training loop costs over a hand-written PyTorch loop, and what each of its
records adds.

Measures: seconds per training epoch of one MLP, one data set and one batch size, trained by
  hand           the minimal idiomatic loop: tensors in memory, randperm + slicing,
                 zero_grad(set_to_none=True), forward, loss, backward, torch.optim.Adam() defaults;
  dataloader     the usual DataLoader(TensorDataset(x, y), batch_size, shuffle=True) loop;
  loop only      dltrain's Learner.train_epoch alone (non-finite guard only, no files);
  loop+logging   dltrain.train.loop.fit with the non-finite guard, metrics.csv and TensorBoard
                 event files (batch loss every 10 steps, epoch scalars): the loop "with logging
                 on at its default interval". It writes no checkpoints, which no recipe can turn
                 off: a measurement, not a configuration;
  run, diag off  + checkpoints/last.pt (the one it replaces kept as previous.pt, best.pt when
                 it improves) every epoch, through the background writer: what `dltrain run`
                 does with log.diagnostics: false;
  run            + Diagnostics (per-layer statistics every 100 steps, probe passes at probe
                 epochs, diagnostics.jsonl): what `dltrain run` does at its defaults.
The dltrain rows are built by dltrain.runner's own path (recipe validated, data split and
normalized, model seeded) with the callbacks builder.features.build_callbacks gives a run (features/registry.py), in its order,
each writing into its own temporary run directory. All start from the same initial weights (one
model built by dltrain, deep-copied), see the same normalized tensors, and use Adam with lr 1e-3,
betas (0.9, 0.999), eps 1e-8. No validation split, so an epoch is training plus its records.

Two cases: `synthetic` (20,000 x 64 Gaussian features, 10 classes, MLP [256, 128], batch 64:
313 steps per epoch, where arithmetic dominates) and `digits` (scikit-learn's 1,797 8x8 digits,
MLP [128, 64], batch 64: 29 steps per epoch, where per-step and per-epoch overhead dominate).

Method: the contenders run interleaved in one process, one at a time (each dltrain row trains
in its own thread, fit() driving its epochs, and waits while another runs). Each round gives
every contender a block of `--block` consecutive epochs, in an order shuffled every round
(seeded), after `--warmup` discarded rounds; so a load spike from another process on a shared
machine hits every contender alike. The first epoch of each block is not timed: it absorbs what
the contender before it left running (a checkpoint still being written by dltrain's writer
thread, TensorBoard's writer thread), so every timed epoch pays for its own contender's
background work and for nobody else's. torch runs on `--threads` threads. `--clock wall`
(default) times what a user waits for; `--clock cpu` counts the CPU seconds of this process
(every thread: the writer's and TensorBoard's included).

Cost: about 2 minutes with the defaults (`--rounds 15 --warmup 2 --block 3`) on one idle core,
more on a busy machine; a few MB of temporary files, deleted at the end.

Reading the result: one table per case. A round's value for a contender is the median of its
block's timed epochs. `median s` is the median over rounds; `vs hand` its ratio to the hand
loop's median (the target for dltrain's loop with logging on is <= 1.05x); `paired` the median
over rounds of the ratio to the hand loop in the same round (steadier when the machine's load
changes during the run); `best` the ratio of the fastest rounds (the least disturbed by other
processes); `us/step` the median over the steps per epoch; `iqr` the spread (25th to 75th
percentile) as a fraction of the median: when it is large the machine was busy, and only the
ratios mean much. The three ratios agreeing is the sign of a clean run.

    PYTHONPATH=. python bench/overhead.py [--rounds 15] [--warmup 2] [--block 3] [--threads 1] [--clock cpu]
                                          [--case digits]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from dltrain.components import OPTIMIZERS, SCHEDULES
from dltrain.components.schedules import LRSchedule
from dltrain.data.loader import ArrayLoader
from dltrain.recipe.load import validate_document
from dltrain.rundir.writer import RunDir, new_run_dir
from dltrain.builder.objects import build
from dltrain.features.diagnostics import Diagnostics
from dltrain.diagnostics.probes import fixed_batch
from dltrain.train.events import Callback, FitState
from dltrain.features.nonfinite import NonFiniteGuard
from dltrain.train.loop import Learner, fit
from dltrain.features.checkpoints import Checkpointer
from dltrain.features.metrics_file import MetricsFile
from dltrain.features.tensorboard import TensorBoard

CASES = {
    # name: (data section of the recipe, hidden widths)
    "synthetic": ({"name": "npz"}, [256, 128]),
    "digits": ({"name": "digits"}, [128, 64]),
}
BATCH = 64
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def synthetic_npz(folder: Path, n: int = 20_000, features: int = 64, classes: int = 10) -> Path:
    """Gaussian blobs: learnable, so the loss moves as in real training."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(classes, features)).astype(np.float32)
    y = rng.integers(0, classes, size=n)
    x = centers[y] + rng.normal(scale=6.0, size=(n, features)).astype(np.float32)
    path = folder / "synthetic.npz"
    np.savez(path, x=x, y=y)
    return path


def recipe_for(case: str, folder: Path, epochs: int, diagnostics: bool):
    data, hidden = CASES[case]
    data = dict(data)
    if data["name"] == "npz":
        data["path"] = str(synthetic_npz(folder))
    # every other key at its default: log every 10 steps, TensorBoard on, diagnostics every 100
    # steps, adam lr 1e-3
    return validate_document({
        "name": f"bench-{case}", "seed": 0, "device": "cpu",
        "data": {**data, "val_fraction": 0.0, "test_fraction": 0.0, "batch_size": BATCH},
        "model": {"arch": "mlp", "hidden": hidden},
        "train": {"epochs": epochs},
        "log": {"diagnostics": diagnostics},
    })


def make_learner(recipe, built, model, loss_fn, callbacks: list, generator=None) -> tuple[Learner, FitState]:
    """The learner as builder.training.build_learner builds it for this recipe (whose penalty, clipping,
    accumulation, precision, augmentation and compile are at their defaults); callbacks in
    registry order. `generator`: the data order's, when not the built loader's."""
    optimizer = OPTIMIZERS.build(recipe.optimizer, [p for p in model.parameters() if p.requires_grad])
    steps_per_epoch = -(-len(built.loaders["train"]) // recipe.train.grad_accumulation)
    warmup = recipe.schedule.warmup_epochs
    main = SCHEDULES.build(recipe.schedule, max(1, recipe.train.epochs - int(warmup)))
    schedule = LRSchedule(optimizer, main, warmup_epochs=warmup, steps_per_epoch=steps_per_epoch)
    learner = Learner(model, loss_fn, optimizer, schedule, task=built.data.task,
                      grad_accumulation=recipe.train.grad_accumulation, precision=recipe.train.precision,
                      log_every=recipe.log.every_steps, generator=generator or built.loaders["generator"],
                      augment=built.augment)
    return learner, FitState(learner=learner, epochs=recipe.train.epochs, callbacks=callbacks,
                             checkpoint_every_steps=recipe.train.checkpoint_every_steps or 0)


def loop_epoch(learner: Learner, state: FitState, loader) -> None:
    """Learner.train_epoch alone. It keeps the epoch's running sums in state.progress, which
    fit() clears after each epoch (None: the next call begins a fresh epoch)."""
    learner.train_epoch(loader, state)
    state.progress = None


def hand_epoch(model, optimizer, x, y, batch: int) -> None:
    model.train()
    perm = torch.randperm(x.shape[0])
    for i in range(0, x.shape[0], batch):
        index = perm[i:i + batch]
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
        loss.backward()
        optimizer.step()


def dataloader_epoch(model, optimizer, loader) -> None:
    model.train()
    for xb, yb in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()


# the dltrain contenders: what each adds to the one before (a cost ladder from `loop only`)
RUNS = {
    "loop+logging": "fit() with the non-finite guard, metrics.csv and TensorBoard (batch loss every 10 steps): "
                    "no checkpoints, which no recipe can turn off: a measurement, not a configuration",
    "run, diag off": "+ checkpoints/last.pt (previous.pt, best.pt) every epoch: `dltrain run` with log.diagnostics: false",
    "run": "+ Diagnostics (every 100 steps, probe passes at probe epochs): `dltrain run` at its defaults",
}


class Baton:
    """Runs one contender at a time. A dltrain contender trains in its own thread (fit() drives
    its epochs) and hands control back at the end of each block; the others are plain calls."""

    def __init__(self) -> None:
        self.go: dict[str, threading.Semaphore] = {}
        self.back = threading.Semaphore(0)

    def start(self, name: str, train) -> threading.Thread:
        self.go[name] = threading.Semaphore(0)

        def run():
            self.go[name].acquire()  # its first turn
            try:
                train()
            finally:
                self.back.release()  # its last block ended with the run

        thread = threading.Thread(target=run, name=f"bench-{name}", daemon=True)  # Ctrl-C ends the benchmark
        thread.start()
        return thread

    def turn(self, name: str) -> None:
        """Give `name` its block; returns when it hands back."""
        self.go[name].release()
        self.back.acquire()

    def hand_back(self, name: str) -> None:
        """From `name`'s thread: its block is done; wait for its next turn."""
        self.back.release()
        self.go[name].acquire()


class BlockClock(Callback):
    """The last callback of a dltrain contender: times its epochs (on_epoch_start to the end of
    every callback's on_epoch_end), all but the first of each block, and hands the baton back
    when a block is done."""

    def __init__(self, name: str, baton: Baton, times: list, clock, block: int):
        self.name, self.baton, self.times, self.clock, self.block = name, baton, times, clock, block
        self.in_block = 0
        self.started = 0.0

    def on_epoch_start(self, state: FitState) -> None:
        if self.in_block == self.block:
            self.baton.hand_back(self.name)
            self.in_block = 0
        if self.in_block == 0:
            self.times.append([])
        self.started = self.clock()

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        elapsed = self.clock() - self.started
        if self.in_block:
            self.times[-1].append(elapsed)
        self.in_block += 1


def timed_block(epoch, block: int, clock) -> list[float]:
    """`block` epochs of a plain contender; every one but the first timed."""
    timed = []
    for i in range(block):
        started = clock()
        epoch()
        if i:
            timed.append(clock() - started)
    return timed


def run_case(case: str, rounds: int, warmup: int, clock_name: str, block: int) -> None:
    clock = CLOCKS[clock_name]
    with tempfile.TemporaryDirectory(prefix="dltrain-bench-") as tmp:
        folder = Path(tmp)
        recipe = recipe_for(case, folder, (warmup + rounds) * block, diagnostics=True)
        built = build(recipe)  # runner's own path: data split, normalization, seeded model, loss
        loader = built.loaders["train"]
        x, y = loader.x, loader.y
        model0 = copy.deepcopy(built.model)  # the initial weights every contender starts from
        loss0 = copy.deepcopy(built.loss_fn)  # Diagnostics hooks a run's loss module: one each
        times: dict[str, list[list[float]]] = {n: [] for n in ("hand", "dataloader", "loop only", *RUNS)}

        hand_model = copy.deepcopy(model0)
        hand_opt = torch.optim.Adam(hand_model.parameters())  # defaults: lr 1e-3, no foreach on CPU
        dl_model = copy.deepcopy(model0)
        dl_opt = torch.optim.Adam(dl_model.parameters())
        dl_loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
        loop_learner, loop_state = make_learner(recipe, built, copy.deepcopy(model0), copy.deepcopy(loss0),
                                                [NonFiniteGuard()])
        plain = {
            "hand": lambda: hand_epoch(hand_model, hand_opt, x, y, BATCH),
            "dataloader": lambda: dataloader_epoch(dl_model, dl_opt, dl_loader),
            "loop only": lambda: loop_epoch(loop_learner, loop_state, loader),
        }

        baton, threads, states = Baton(), [], {}
        for name in RUNS:
            run = RunDir(new_run_dir(folder / "runs", recipe.name))
            run.write_recipe(recipe.to_yaml())
            generator = torch.Generator().manual_seed(recipe.seed)
            own_loader = ArrayLoader(x, y, BATCH, shuffle=True, generator=generator)
            # the callbacks builder.features.build_callbacks gives a run, in registry order (HParams aside)
            callbacks = [NonFiniteGuard(), MetricsFile(run), TensorBoard(run, histograms=recipe.log.histograms)]
            if name != "loop+logging":
                callbacks.append(Checkpointer(run, built.monitor, built.mode, built.min_delta))
            if name == "run":
                callbacks.insert(0, Diagnostics(run, fixed_batch(own_loader), recipe.log.diagnostics_every,
                                                tensorboard=recipe.log.tensorboard))
            callbacks.append(BlockClock(name, baton, times[name], clock, block))
            learner, state = make_learner(recipe, built, copy.deepcopy(model0), copy.deepcopy(loss0), callbacks,
                                          generator)
            states[name] = (state, run)
            threads.append(baton.start(name, lambda learner=learner, state=state, own_loader=own_loader:
                                       fit(learner, own_loader, None, state)))

        shuffler = random.Random(0)  # a fresh order each round: no contender always follows the same one
        for _ in range(warmup + rounds):
            for name in shuffler.sample(list(times), len(times)):
                if name in plain:
                    times[name].append(timed_block(plain[name], block, clock))
                else:
                    baton.turn(name)
        for thread in threads:
            thread.join()
        for name, (state, run) in states.items():
            if state.stop is None or state.stop.status != "completed":
                raise SystemExit(f"{name}: the run did not complete: {state.stop}")
            assert (run.path / "metrics.csv").is_file()
            assert (run.checkpoints / "last.pt").is_file() == (name != "loop+logging")
        final_loss = states["run"][0].history[-1]["train_loss"]
        print_table(case, times, warmup, len(loader), x.shape, final_loss, clock_name, block)


def print_table(case: str, times: dict, warmup: int, steps: int, shape, final_loss: float, clock: str,
                block: int) -> None:
    # one value per round and contender: the median of its block's timed epochs
    kept = {name: [statistics.median(b) for b in blocks[warmup:]] for name, blocks in times.items()}
    rounds = len(kept["hand"])
    hand = statistics.median(kept["hand"])
    print(f"\n{case}: x {tuple(shape)}, batch {BATCH}, {steps} steps/epoch, {rounds} rounds "
          f"(+{warmup} warm-up) of {block}-epoch blocks (first epoch untimed), {clock} clock, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"the default run's train_loss after its last epoch {final_loss:.4f}")
    print(f"{'contender':<14} {'median s':>9} {'vs hand':>8} {'paired':>8} {'best':>8} {'us/step':>8} {'iqr':>6}")
    for name, values in kept.items():
        median = statistics.median(values)
        paired = statistics.median(v / h for v, h in zip(values, kept["hand"]))  # same round
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (median, median, median)
        best = min(values) / min(kept["hand"])  # fastest rounds: the least disturbed by other processes
        print(f"{name:<14} {median:>9.4f} {median / hand:>7.3f}x {paired:>7.3f}x {best:>7.3f}x "
              f"{1e6 * median / steps:>8.1f} {(q3 - q1) / median:>5.0%}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (one epoch of each contender)")
    parser.add_argument("--warmup", type=int, default=2, help="rounds run first and discarded")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall", help="wall seconds or CPU seconds")
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--block", type=int, default=3, help="epochs per contender per round (the first untimed)")
    args = parser.parse_args(argv)
    if args.block < 2:
        parser.error("--block must be at least 2: the first epoch of a block is not timed")
    torch.set_num_threads(args.threads)
    for case in CASES if args.case == "all" else [args.case]:
        run_case(case, args.rounds, args.warmup, args.clock, args.block)

if __name__ == "__main__":
    sys.exit(main())
