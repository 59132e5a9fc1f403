"""Where an epoch stands between two optimizer steps: what a mid-epoch checkpoint must hold for a
resumed run to finish that epoch exactly as the uninterrupted run would have."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from dltrain.train.metrics import MetricSums


@dataclass
class EpochProgress:
    order: torch.Tensor | None  # data-order generator state before this epoch's permutation was drawn
    lr: float  # the lr the epoch started with: its metrics row reports it
    sums: MetricSums  # running loss and metric sums of the batches done
    losses: torch.Tensor  # (n_batches,) batch losses; entries [logged, batch) not yet sent to on_log
    penalty_sum: torch.Tensor
    norms: torch.Tensor  # [sum of measured grad norms, count]
    batch: int = 0  # batches done (always at an optimizer-step boundary when saved)
    logged: int = 0  # batches already passed to on_log
    batch_steps: list[int] = field(default_factory=list)  # optimizer step of each batch done
    seconds: float = 0.0  # time spent on this epoch by earlier processes (a resumed run adds its own)
    since: float = field(default_factory=time.perf_counter)  # when this process took the epoch up

    @classmethod
    def begin(cls, learner, n_batches: int) -> "EpochProgress":
        device = learner.device
        order = learner.generator.get_state() if learner.generator is not None else None
        return cls(order=order, lr=learner.schedule.lr, sums=MetricSums(learner.task, device),
                   losses=torch.empty(n_batches, device=device), penalty_sum=torch.zeros((), device=device),
                   norms=torch.zeros(2, device=device))

    def elapsed(self) -> float:
        return self.seconds + time.perf_counter() - self.since

    def state_dict(self) -> dict:
        return {"order": self.order, "lr": self.lr, "sums": self.sums.state_dict(), "losses": self.losses[:self.batch],
                "n_batches": len(self.losses), "penalty_sum": self.penalty_sum, "norms": self.norms,
                "batch": self.batch, "logged": self.logged, "batch_steps": list(self.batch_steps),
                "seconds": self.elapsed()}

    @classmethod
    def from_state(cls, state: dict, learner) -> "EpochProgress":
        device = learner.device
        sums = MetricSums(learner.task, device)
        sums.load_state_dict(state["sums"])
        losses = torch.empty(state["n_batches"], device=device)
        losses[:state["batch"]] = state["losses"].to(device)
        return cls(order=state["order"], lr=state["lr"], sums=sums, losses=losses,
                   penalty_sum=state["penalty_sum"].to(device), norms=state["norms"].to(device),
                   batch=state["batch"], logged=state["logged"], batch_steps=list(state["batch_steps"]),
                   seconds=state["seconds"])
