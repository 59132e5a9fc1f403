"""The training loop. `Learner` does the per-batch work; `fit` runs epochs and fires callbacks.

Nothing here reads the recipe: it receives built objects. Per batch there is no host
synchronisation: batch losses are kept as device tensors, read back every `log_every` steps
(the one sync point, shared by the non-finite guard and the loggers) and at the epoch's end.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch

from dltrain.core.metrics import METRICS
from dltrain.core.status import RunStatus
from dltrain.core.words import plural
from dltrain.train.events import FitState, StepEnd, StopTraining, fire
from dltrain.train.metrics import MetricSums, TargetUnits
from dltrain.train.position import EpochProgress


@dataclass
class Penalty:
    """l1 * sum|w| + l2 * sum w^2 over weight matrices (ndim > 1): biases and norm gains are exempt."""

    l1: float = 0.0
    l2: float = 0.0

    def __call__(self, weights: list[torch.Tensor]) -> torch.Tensor:
        total = weights[0].new_zeros(())
        if self.l1:
            total = total + self.l1 * sum(w.abs().sum() for w in weights)
        if self.l2:
            total = total + self.l2 * sum(w.pow(2).sum() for w in weights)
        return total

    def __bool__(self) -> bool:
        return bool(self.l1 or self.l2)


@dataclass
class Clip:
    """Clip by global norm (`norm`, with `norm_type`) or elementwise by `value`."""

    norm: float | None = None
    norm_type: float = 2.0
    value: float | None = None


class Learner:
    """One model, its loss, optimizer, schedule and the settings of a training step."""

    def __init__(self, model, loss_fn, optimizer, schedule, *, task: str, penalty: Penalty | None = None,
                 clip: Clip | None = None, grad_accumulation: int = 1, precision: str = "fp32",
                 log_every: int = 10, generator: torch.Generator | None = None, augment=None,
                 units: TargetUnits | None = None):
        self.model, self.loss_fn, self.optimizer, self.schedule = model, loss_fn, optimizer, schedule
        self.task, self.penalty, self.clip = task, penalty or Penalty(), clip
        self.grad_accumulation, self.log_every = grad_accumulation, log_every
        self.generator = generator  # drives the data order; saved with checkpoints
        self.augment = augment  # optional callable x -> x for training batches (data.augment); has state_dict()
        self.units = units  # standardized regression targets: epoch metrics in the data's units
        # data parallelism (runner/distributed.py) sets these two: the model evaluation runs (the
        # model unwrapped from DistributedDataParallel, whose forward may hold collectives), and
        # `reduce`, which sums a float64 tensor over the ranks in place so metrics cover every shard
        self.eval_model = None
        self.reduce = None
        self.device = next(model.parameters()).device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.weights = [p for p in self.params if p.ndim > 1]
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        self.stepped = True  # did the last optimizer_step change the weights (False: skipped by the scaler)
        if self.scaler.is_enabled():
            # the scaler decides (after its own host sync) whether to call optimizer.step(): this
            # hook, through torch's public API, is how the loop learns that decision at no cost
            optimizer.register_step_post_hook(self._optimizer_stepped)

    def _optimizer_stepped(self, optimizer, args, kwargs) -> None:
        self.stepped = True

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def loss_scale(self) -> torch.Tensor | None:
        """The fp16 loss scale the next backward multiplies gradients by (a device tensor: no sync),
        or None without loss scaling."""
        if not self.scaler.is_enabled():
            return None
        return self.scaler.scale(torch.ones((), device=self.device))

    def optimizer_step(self, measure_norm: bool = False) -> StepEnd:
        """Clip, step, zero grads, advance the schedule: one optimizer step on the gradients
        accumulated since the last one. The pre-clip grad norm is measured when asked (or when
        clipping by norm computes it anyway)."""
        norm = None
        self.stepped = not self.scaler.is_enabled()
        if self.clip is not None or measure_norm:
            self.scaler.unscale_(self.optimizer)
            grads = [p.grad for p in self.params if p.grad is not None]
            if self.clip is not None and self.clip.norm is not None:
                norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip.norm, self.clip.norm_type, foreach=True)
            else:
                norm = torch.nn.utils.get_total_norm(grads, 2.0, foreach=True)
                if self.clip is not None:
                    torch.nn.utils.clip_grad_value_(self.params, self.clip.value, foreach=True)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step_batch()
        return StepEnd(grad_norm=norm, skipped=not self.stepped)

    def train_epoch(self, loader, state: FitState) -> dict[str, float]:
        """One pass over the training data, or the rest of one when state.progress comes from a
        mid-epoch checkpoint. Fires on_log (and on_checkpoint when due); returns train metrics."""
        self.model.train()
        n_batches = len(loader)
        if state.progress is None:
            state.progress = EpochProgress.begin(self)
        p = state.progress  # the epoch's running sums live here, so a checkpoint can carry them
        if p.order is not None:
            self.generator.set_state(p.order)  # a resumed epoch redraws the same permutation
        accumulated = 0
        step_listeners = [cb for cb in state.callbacks if hasattr(cb, "on_step_end")]
        for i, (x, y) in enumerate(loader.iterate(p.batch), start=p.batch):
            if self.augment is not None:
                x = self.augment(x)  # training batches only: evaluate() never augments
            with self.autocast():
                output = self.model(x)
                loss = self.loss_fn(output, y)
            total = loss
            if self.penalty:
                penalty = self.penalty(self.weights)
                total = loss + penalty
                p.penalty_sum += penalty.detach()
            if self.grad_accumulation > 1:  # x / 1 == x: skip a kernel launch per step
                total = total / self.grad_accumulation
            share = loader.share(i)  # a rank's part of the batch, relative to an even split: 1 unless sharded
            if share != 1.0:
                total = total * share  # so the ranks' averaged gradients are the whole batch's mean
            self.scaler.scale(total).backward()
            p.pending.append(loss.detach())
            p.sums.update(loss, output, y)
            p.pending_steps.append(state.step + 1)
            accumulated += 1
            if accumulated == self.grad_accumulation or i == n_batches - 1:
                accumulated = 0
                log_now = (state.step + 1) % self.log_every == 0
                step = self.optimizer_step(measure_norm=log_now)
                state.step += 1
                if step.grad_norm is not None:
                    p.norm_sum += step.grad_norm.float()
                    p.norm_count += 1
                if step_listeners:
                    fire(step_listeners, "on_step_end", state, step)
                if log_now:
                    self._log(state, p.pending, p.pending_steps)
                p.batch = i + 1
                if state.agree is not None:  # distributed: the ranks agree on stopping after every step
                    state.agree(state)
                if state.checkpoint_due(last_batch=i == n_batches - 1):
                    checkpoint_here(state)
        if p.pending:
            self._log(state, p.pending, p.pending_steps)
        logs = p.sums.compute(self.reduce)
        if p.norm_count:
            logs["grad_norm"] = p.norm_sum.item() / p.norm_count
        if self.penalty:
            logs["penalty"] = p.penalty_sum.item() / max(1, n_batches)
        return logs

    def _log(self, state: FitState, pending: list[torch.Tensor], steps: list[int]) -> None:
        """Fire on_log with the batch losses since the last log point, and empty the two lists."""
        values = torch.stack(pending).tolist()  # the sync point: every log_every steps
        batches = list(zip(steps, values))
        pending.clear()
        steps.clear()
        fire(state.callbacks, "on_log", state, batches)

    @torch.no_grad()
    def evaluate(self, loader) -> dict[str, float]:
        model = self.model if self.eval_model is None else self.eval_model
        model.eval()
        sums = MetricSums(self.task, self.device, self.units)
        for x, y in loader:
            with self.autocast():
                output = model(x)
                loss = self.loss_fn(output, y)
            sums.update(loss, output, y)
        sharded = getattr(loader, "world", 1) > 1  # each rank holds a part: sum the parts (an unsharded pass is whole)
        return sums.compute(self.reduce if sharded else None)

    @property
    def module(self):
        """The model without its torch.compile and DistributedDataParallel wrappers (its state_dict
        keys are the plain names, so a checkpoint loads whatever the number of processes)."""
        model = self.model
        while True:
            if isinstance(model, torch.nn.parallel.DistributedDataParallel):
                model = model.module
            elif hasattr(model, "_orig_mod"):
                model = model._orig_mod
            else:
                return model

    def state_dict(self) -> dict:
        return {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "scaler": self.scaler.state_dict(),
                "generator": self.generator.get_state() if self.generator is not None else None,
                "augment": self.augment.state_dict() if self.augment is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if state.get("generator") is not None and self.generator is not None:
            self.generator.set_state(state["generator"])
        if state.get("augment") is not None and self.augment is not None:
            self.augment.load_state_dict(state["augment"])


def fit(learner: Learner, train_loader, val_loader, state: FitState) -> FitState:
    """Train until state.epochs or a StopTraining. Callbacks are in state.callbacks.
    A resumed state (epoch, step, progress restored from a checkpoint) continues where it was."""
    callbacks = state.callbacks
    try:
        fire(callbacks, "on_fit_start", state)
        while state.epoch < state.epochs:
            if state.stop_requested:  # a signal arrived during validation or the epoch's end
                checkpoint_here(state)
            if state.progress is None:
                fire(callbacks, "on_epoch_start", state)
            train = learner.train_epoch(train_loader, state)
            lr, seconds = state.progress.lr, state.progress.elapsed()  # the lr this epoch started with
            state.progress = None
            logs = {f"train_{k}" if k in METRICS else k: v for k, v in train.items()}
            started = time.perf_counter()
            if val_loader is not None:
                logs.update({f"val_{k}": v for k, v in evaluate(learner, val_loader, state, "val").items()})
            state.epoch += 1
            logs = {"epoch": state.epoch, "step": state.step, "lr": lr, **logs,
                    "seconds": seconds + time.perf_counter() - started}
            learner.schedule.step_epoch(logs)
            state.history.append(logs)
            fire(callbacks, "on_epoch_end", state, logs)
            if state.agree is not None:  # distributed: rank 0's callbacks decide whether to go on
                state.agree(state)
    except StopTraining as stop:
        state.stop = stop
    finally:
        if state.stop is None and state.epoch >= state.epochs:
            state.stop = StopTraining(RunStatus.COMPLETED, f"completed all {plural(state.epochs, 'epoch')}"
                                      if state.epochs != 1 else "completed 1 epoch")
        fire_end(state)
    return state


def evaluate(learner: Learner, loader, state: FitState, split: str) -> dict[str, float]:
    """learner.evaluate with on_eval_start/on_eval_end around it."""
    fire(state.callbacks, "on_eval_start", state, split)
    metrics = learner.evaluate(loader)
    fire(state.callbacks, "on_eval_end", state, split, metrics)
    return metrics


def checkpoint_here(state: FitState) -> None:
    """Fire on_checkpoint; then, if a stop signal asked for it, end the run as `interrupted`."""
    fire(state.callbacks, "on_checkpoint", state)
    if state.stop_requested:
        where = (f"epoch {state.epoch + 1}, step {state.step}" if state.progress is not None
                 else f"the end of epoch {state.epoch}, step {state.step}")
        raise StopTraining(RunStatus.INTERRUPTED, f"interrupted by {state.stop_request.name} at {where}")


# a run ended by its plan or its pruner ends with a checkpoint of its last state (an interrupted
# one wrote its own at the stop; a diverged one keeps its last good one; a failed one is mid-step)
ENDS_WITH_CHECKPOINT = (RunStatus.COMPLETED, RunStatus.EARLY_STOPPED, RunStatus.PRUNED)


def fire_end(state: FitState) -> None:
    """The final on_checkpoint where due, then on_fit_end for every callback even if one of them
    fails (each may hold a file or hooks to release); the first failure is raised after all ran."""
    final = state.stop is not None and state.stop.status in ENDS_WITH_CHECKPOINT
    error: Exception | None = None
    for event in ("on_checkpoint", "on_fit_end") if final else ("on_fit_end",):
        for cb in state.callbacks:
            if hasattr(cb, event):
                try:
                    getattr(cb, event)(state)
                except Exception as exc:
                    error = error or exc
    if error is not None:
        raise error
