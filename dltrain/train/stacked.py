"""K members trained side by side: one forward, one backward and one optimizer step for all of
them, on a stacked model (models/stacked.py) whose parameters carry a leading model axis.

Each member keeps everything a lone run has: its own FitState and callbacks (metrics.csv,
checkpoints, early stopping, the non-finite guard, ...), its own data order (its loader's
generator), its own dropout generator, its own module with plain parameter names. The loop fires
every member's events as fit() does, with the member's own logs; a member that stops (early
stopping, divergence, a failing callback) ends there, the others go on. Its slice of the stack is
still computed (members are independent: nothing of it reaches the others) until the group ends.

The optimizer is the recipe's own torch.optim optimizer over the stacked tensors: every optimizer
dltrain offers updates each element from that element's own gradient and state, so each member's
slice follows the lone run's update rule exactly; a member's checkpoint holds its slice of the
optimizer state, in the lone run's layout (MemberLearner.state_dict).
"""

from __future__ import annotations

import contextlib
import copy
import time
import traceback
from dataclasses import dataclass, field

import torch

from dltrain.core.metrics import METRICS
from dltrain.core.status import RunStatus
from dltrain.core.words import plural
from dltrain.train.events import FitState, StepEnd, StopTraining, fire
from dltrain.train.loop import checkpoint_here, fire_end
from dltrain.train.metrics import error_sums
from dltrain.train.position import EpochProgress


class StackedSums:
    """MetricSums for K members at once: (K,) float64 loss sums, loss * n added batch by batch as
    MetricSums adds them (so each member's sum is the lone run's), classification outputs counted
    FOLD_EVERY batches at a time."""

    FOLD_EVERY = 16

    def __init__(self, task: str, k: int, device, units: list | None = None):
        """`units`: each member's TargetUnits (its own training split's scale) or None, as its lone
        run's MetricSums has them: errors (and mse/mae losses) reported in the data's units."""
        self.task, self.count = task, 0
        self.scale, self.unit_loss = None, None
        if units and units[0] is not None:
            self.scale = torch.stack([u.scale.reshape(-1) for u in units]).reshape(k, 1, -1).to(device)
            self.unit_loss = units[0].loss
        self.loss_sum = torch.zeros(k, dtype=torch.float64, device=device)
        self.extra = (torch.zeros(k, dtype=torch.int64, device=device) if task == "classification"
                      else torch.zeros(k, 2, dtype=torch.float64, device=device))
        self.outputs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    @torch.no_grad()
    def update(self, losses: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> None:
        k, n = target.shape[0], target.shape[1]
        self.count += n
        self.loss_sum.add_(losses.detach(), alpha=n)
        if self.task == "classification":
            self.outputs.append(output.detach())
            self.targets.append(target)
            if len(self.outputs) >= self.FOLD_EVERY:
                self._fold()
        else:
            err = (output.float() - target).reshape(k, n, -1)
            if self.scale is not None:
                err = err * self.scale
            self.extra += error_sums(err)

    @torch.no_grad()
    def _fold(self) -> None:
        if not self.outputs:
            return
        output, target = torch.cat(self.outputs, dim=1), torch.cat(self.targets, dim=1)
        predicted = (output[..., 0] > 0).long() if output.shape[-1] == 1 else output.argmax(dim=-1)
        self.extra += (predicted == target).sum(dim=1)
        self.outputs, self.targets = [], []

    def compute(self) -> list[dict[str, float]]:
        self._fold()
        if self.count == 0:
            return [{} for _ in range(self.loss_sum.shape[0])]
        n = float(self.count)
        losses, extra = self.loss_sum.tolist(), self.extra.double().tolist()  # one sync for all members
        out = []
        for loss, more in zip(losses, extra):
            row = {"loss": loss / n}
            if self.task == "classification":
                row["accuracy"] = more / n
            else:
                row["mae"], row["rmse"] = more[0] / n, (more[1] / n) ** 0.5
                if self.unit_loss in ("mse", "mae"):
                    row["loss"] = more[1] / n if self.unit_loss == "mse" else more[0] / n
            out.append(row)
        return out

    def member(self, k: int, sums) -> None:
        """Member k's sums into a lone MetricSums (for a member's mid-epoch checkpoint)."""
        self._fold()
        sums.count = self.count
        sums.loss_sum = self.loss_sum[k].clone()
        sums.extra = self.extra[k].clone()


class MemberLosses:
    """(K,) losses, one per member, from the members' loss function. A torch loss that averages
    (reduction `mean`, no class weights) is called once on all members' samples with reduction
    `none`, each member's mean taken after: one call instead of K (the mean's rounding may differ
    from the lone run's in the last bits). Any other loss is called once per member, as alone."""

    def __init__(self, loss_fn):
        self.loss_fn = loss_fn
        self.per_sample = None
        if (isinstance(loss_fn, torch.nn.modules.loss._Loss) and loss_fn.reduction == "mean"
                and getattr(loss_fn, "weight", None) is None and getattr(loss_fn, "pos_weight", None) is None):
            self.per_sample = copy.copy(loss_fn)
            self.per_sample.reduction = "none"

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k = output.shape[0]
        if self.per_sample is None:
            return torch.stack([self.loss_fn(output[i], target[i]) for i in range(k)])
        return self.per_sample(output.flatten(0, 1), target.flatten(0, 1)).reshape(k, -1).mean(dim=1)


class MemberLearner:
    """A member's Learner (its own module, loss, loaders' generator: what the features read) whose
    optimizer state and schedule are the group's: state_dict() is the lone run's layout, the
    optimizer state sliced at the member's index."""

    def __init__(self, learner, index: int, group: "StackedGroup"):
        self.learner, self.index, self.group = learner, index, group

    def __getattr__(self, name):
        return getattr(self.learner, name)

    @property
    def schedule(self):
        return self.group.schedule

    def state_dict(self) -> dict:
        state = self.learner.state_dict()
        state["optimizer"] = self.group.optimizer_slice(self.index)
        state["schedule"] = self.group.schedule.state_dict()
        return state


@dataclass
class Member:
    """One member's place in the group; `outcome` (status, reason, traceback) once it has ended."""

    state: FitState
    loader: object
    val_loader: object
    generator: torch.Generator  # its dropout masks (the stack's), swapped in as the global one around its events
    outcome: tuple | None = None
    logs: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.outcome is None


@contextlib.contextmanager
def own_rng(generator: torch.Generator):
    """The member's generator as the device's global one: a callback drawing random numbers, and a
    checkpoint's saved RNG state, are the member's own (a member resumed alone draws on from there)."""
    cuda = generator.device.type == "cuda"
    get = (lambda: torch.cuda.get_rng_state(generator.device)) if cuda else torch.get_rng_state
    put = (lambda s: torch.cuda.set_rng_state(s, generator.device)) if cuda else torch.set_rng_state
    saved = get()
    put(generator.get_state())
    try:
        yield
    finally:
        generator.set_state(get())
        put(saved)


class StackedGroup:
    """The stacked model, its optimizer and schedule, and the members it trains."""

    def __init__(self, model, optimizer, schedule, loss_fn, *, task: str, log_every: int, members: list[Member],
                 modules: list):
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.losses = MemberLosses(loss_fn)
        self.task, self.log_every, self.members, self.modules = task, log_every, members, modules
        self.params = model.stacked_parameters()
        self.device = self.params[0].device
        self.step = 0

    def units(self) -> list:
        """Each member's TargetUnits (None for class labels or raw targets)."""
        return [m.state.learner.units for m in self.members]

    # -- a member's view ----------------------------------------------------------------------------

    def optimizer_slice(self, k: int) -> dict:
        """The optimizer's state_dict as the member's lone optimizer would hold it."""
        full = self.optimizer.state_dict()
        shapes = [p.shape for p in self.params]

        def cut(i, value):
            if torch.is_tensor(value):
                return value[k].clone() if value.shape == shapes[i] else value.clone()
            return value
        return {"state": {i: {name: cut(i, v) for name, v in s.items()} for i, s in full["state"].items()},
                "param_groups": full["param_groups"]}

    def sync(self, k: int) -> None:
        """The stack's member k into its own module, its own optimizer's lr the group's."""
        self.model.copy_to(k, self.modules[k])
        lr = self.optimizer.param_groups[0]["lr"]
        for group in self.members[k].state.learner.learner.optimizer.param_groups:
            group["lr"] = lr

    # -- events ------------------------------------------------------------------------------------

    def fire(self, m: Member, event: str, *args) -> None:
        """Fire an event on one member; a StopTraining or an error ends that member only."""
        if not m.active:
            return
        try:
            with own_rng(m.generator):
                if event == "checkpoint_here":
                    checkpoint_here(m.state)
                else:
                    fire(m.state.callbacks, event, m.state, *args)
        except StopTraining as stop:
            m.state.stop = stop
            self.end(m, (stop.status, stop.reason, None))
        except Exception as exc:
            self.end(m, (RunStatus.FAILED, f"{type(exc).__name__}: {exc}", traceback.format_exc()))

    def end(self, m: Member, outcome: tuple) -> None:
        """The member's training is over: its module takes its weights, on_fit_end runs."""
        m.outcome = outcome
        k = self.members.index(m)
        self.sync(k)
        try:
            with own_rng(m.generator):
                fire_end(m.state)
        except Exception as exc:
            if outcome[2] is None:
                m.outcome = (RunStatus.FAILED, f"{type(exc).__name__}: {exc}", traceback.format_exc())

    def active(self) -> list[Member]:
        return [m for m in self.members if m.active]

    # -- training ----------------------------------------------------------------------------------

    def fit(self) -> None:
        """Train every member until its epochs, or until it stops; every member ends with an outcome."""
        for m in self.members:
            self.fire(m, "on_fit_start")
        epochs = self.members[0].state.epochs
        while self.active() and self.step_epoch_due(epochs):
            for m in self.active():
                if m.state.stop_requested:
                    self.fire(m, "checkpoint_here")
                m.state.progress = EpochProgress.begin(m.state.learner)
                self.fire(m, "on_epoch_start")
            if not self.active():
                break
            started = time.perf_counter()
            train = self.train_epoch()
            self.end_epoch(train, time.perf_counter() - started)
        for m in self.active():
            m.state.stop = StopTraining(RunStatus.COMPLETED, f"completed all {plural(epochs, 'epoch')}"
                                        if epochs != 1 else "completed 1 epoch")
            self.end(m, (RunStatus.COMPLETED, m.state.stop.reason, None))

    def step_epoch_due(self, epochs: int) -> bool:
        return any(m.state.epoch < epochs for m in self.active())

    def train_epoch(self) -> list[dict]:
        self.model.train()
        k = len(self.members)
        sums = StackedSums(self.task, k, self.device, self.units())
        norm_sum, norm_count = torch.zeros(k, device=self.device), 0
        pending: list[torch.Tensor] = []
        pending_steps: list[int] = []
        listeners = any(hasattr(cb, "on_step_end") for m in self.members for cb in m.state.callbacks)
        batches = self.epoch_batches()
        n_batches = len(batches)
        for i, (x, y) in enumerate(batches):
            output = self.model(x)
            losses = self.losses(output, y)
            losses.sum().backward()  # each member's gradient is its own loss's: the sum adds no cross terms
            pending.append(losses.detach())
            sums.update(losses, output, y)
            self.step += 1
            pending_steps.append(self.step)
            log_now = self.step % self.log_every == 0
            norms = self.grad_norms() if log_now else None
            if norms is not None:
                norm_sum += norms
                norm_count += 1
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.schedule.step_batch()
            for j, m in enumerate(self.members):
                if m.active:
                    m.state.step = self.step
                    m.state.progress.batch = i + 1
                    if listeners:
                        self.fire(m, "on_step_end", StepEnd(grad_norm=norms[j] if norms is not None else None))
            if log_now:
                self.log(pending, pending_steps)
            for j, m in enumerate(self.members):
                if m.active and m.state.checkpoint_due(last_batch=i == n_batches - 1):
                    self.member_progress(j, sums, norm_sum, norm_count, pending, pending_steps)
                    self.sync(j)
                    self.fire(m, "checkpoint_here")
        if pending:
            self.log(pending, pending_steps)
        rows = sums.compute()
        if norm_count:
            for row, norm in zip(rows, (norm_sum / norm_count).tolist()):
                row["grad_norm"] = norm
        return rows

    def epoch_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's (K, B, ...) batches: each member's loader draws its own order (as in its lone
        run), the members' epochs are stacked once, and each batch is a view of that."""
        per_member = [list(m.loader.iterate()) for m in self.members]
        xs = torch.stack([torch.cat([x for x, _ in batches]) for batches in per_member])
        ys = torch.stack([torch.cat([y for _, y in batches]) for batches in per_member])
        out, start = [], 0
        for x, _ in per_member[0]:
            end = start + x.shape[0]
            out.append((xs[:, start:end], ys[:, start:end]))
            start = end
        return out

    def grad_norms(self) -> torch.Tensor:
        """(K,) pre-step global L2 gradient norms, one per member (torch.nn.utils.get_total_norm's)."""
        per_tensor = [torch.linalg.vector_norm(p.grad.flatten(1), dim=1) for p in self.params if p.grad is not None]
        return torch.linalg.vector_norm(torch.stack(per_tensor), dim=0)

    def log(self, pending: list[torch.Tensor], steps: list[int]) -> None:
        """on_log for every member with its own batch losses: one host sync for all of them."""
        values = torch.stack(pending).tolist()  # (steps, K)
        for j, m in enumerate(self.members):
            self.fire(m, "on_log", [(step, row[j]) for step, row in zip(steps, values)])
        pending.clear()
        steps.clear()

    def member_progress(self, k, sums, norm_sum, norm_count, pending, steps) -> None:
        """Member k's EpochProgress as its lone loop would hold it (for a mid-epoch checkpoint)."""
        p = self.members[k].state.progress
        sums.member(k, p.sums)
        p.norm_sum, p.norm_count = norm_sum[k].clone(), norm_count
        p.pending, p.pending_steps = [loss[k] for loss in pending], list(steps)

    @torch.no_grad()
    def evaluate(self) -> list[dict]:
        """Every member on its own validation split, in one pass of the stack."""
        self.model.eval()
        sums = StackedSums(self.task, len(self.members), self.device, self.units())
        for batches in zip(*[iter(m.val_loader) for m in self.members]):
            x = torch.stack([b[0] for b in batches])
            y = torch.stack([b[1] for b in batches])
            output = self.model(x)
            sums.update(self.losses(output, y), output, y)
        return sums.compute()

    def end_epoch(self, train: list[dict], seconds: float) -> None:
        """Validation, the epoch's logs and on_epoch_end, as fit() does for a lone run."""
        members = self.active()
        for m in members:
            self.sync(self.members.index(m))
        val = None
        if self.members[0].val_loader is not None:
            for m in members:
                self.fire(m, "on_eval_start", "val")
            started = time.perf_counter()
            val = self.evaluate()
            seconds += time.perf_counter() - started
            for m in members:
                self.fire(m, "on_eval_end", "val", val[self.members.index(m)])
        rows = []
        for m in members:
            if not m.active:
                continue
            k = self.members.index(m)
            state = m.state
            logs = {f"train_{key}" if key in METRICS else key: v for key, v in train[k].items()}
            if val is not None:
                logs.update({f"val_{key}": v for key, v in val[k].items()})
            lr = state.progress.lr
            state.progress = None
            state.epoch += 1
            logs = {"epoch": state.epoch, "step": state.step, "lr": lr, **logs, "seconds": seconds}
            rows.append((m, logs))
        if rows:
            self.schedule.step_epoch(rows[0][1])  # one schedule for the group (never plateau: runner/stacked.py)
        for m, logs in rows:
            m.state.history.append(logs)
            self.fire(m, "on_epoch_end", logs)
            if m.active and m.state.epoch >= m.state.epochs:
                m.state.stop = StopTraining(RunStatus.COMPLETED, f"completed all {plural(m.state.epochs, 'epoch')}"
                                            if m.state.epochs != 1 else "completed 1 epoch")
                self.end(m, (RunStatus.COMPLETED, m.state.stop.reason, None))
