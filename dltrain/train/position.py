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
    penalty_sum: torch.Tensor
    norm_sum: torch.Tensor  # sum of the measured grad norms (float32, on the device)
    norm_count: int = 0  # how many were measured
    batch: int = 0  # batches done (always at an optimizer-step boundary when saved)
    # batch losses (device scalars) not yet passed to on_log, and the optimizer step of each: kept
    # as a list rather than written into a buffer, which would cost an index-put kernel per batch
    pending: list[torch.Tensor] = field(default_factory=list)
    pending_steps: list[int] = field(default_factory=list)
    seconds: float = 0.0  # time spent on this epoch by earlier processes (a resumed run adds its own)
    since: float = field(default_factory=time.perf_counter)  # when this process took the epoch up

    @classmethod
    def begin(cls, learner) -> "EpochProgress":
        device = learner.device
        order = learner.generator.get_state() if learner.generator is not None else None
        return cls(order=order, lr=learner.schedule.lr, sums=MetricSums(learner.task, device, learner.units),
                   penalty_sum=torch.zeros((), device=device), norm_sum=torch.zeros((), device=device))

    def elapsed(self) -> float:
        return self.seconds + time.perf_counter() - self.since

    def state_dict(self) -> dict:
        pending = torch.stack(self.pending) if self.pending else torch.zeros(0)
        return {"order": self.order, "lr": self.lr, "sums": self.sums.state_dict(),
                "penalty_sum": self.penalty_sum, "norm_sum": self.norm_sum, "norm_count": self.norm_count,
                "batch": self.batch, "pending": pending, "pending_steps": list(self.pending_steps),
                "seconds": self.elapsed()}

    @classmethod
    def from_state(cls, state: dict, learner) -> "EpochProgress":
        device = learner.device
        sums = MetricSums(learner.task, device, learner.units)
        sums.load_state_dict(state["sums"])
        if "pending" in state:
            pending, steps = state["pending"], list(state["pending_steps"])
            norm_sum, norm_count = state["norm_sum"], int(state["norm_count"])
        else:  # an earlier format: every batch loss of the epoch, those from `logged` on not yet logged
            logged, batch = state["logged"], state["batch"]
            pending, steps = state["losses"][logged:batch], list(state["batch_steps"][logged:batch])
            norm_sum, norm_count = state["norms"][0], int(state["norms"][1].item())
        return cls(order=state["order"], lr=state["lr"], sums=sums, penalty_sum=state["penalty_sum"].to(device),
                   norm_sum=norm_sum.to(device, torch.float32).clone(), norm_count=norm_count,
                   batch=state["batch"], pending=list(pending.to(device).unbind(0)), pending_steps=steps,
                   seconds=state["seconds"])
