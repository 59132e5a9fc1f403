"""Running metric sums kept on the device; read back with one host sync per epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TargetUnits:
    """Regression targets standardized for training (data.normalize_target): an error times `scale`
    is in the data's own units (the shift cancels in a difference), so mae and rmse are reported in
    them. `loss`: `mse` or `mae` when the loss is that error, reported in the data's units too; None
    (huber: its delta is in training units) keeps the loss as trained."""

    scale: torch.Tensor  # per target column
    loss: str | None = None


def error_sums(err: torch.Tensor) -> torch.Tensor:
    """(..., n, columns) regression errors -> (..., 2): [sum of the samples' mean |err|, sum of their
    mean err^2]. One definition for a lone run's sums and a stack of members' (train/stacked.py)."""
    return torch.stack([err.abs().mean(dim=-1).sum(dim=-1), err.pow(2).mean(dim=-1).sum(dim=-1)], dim=-1)


class MetricSums:
    """Accumulates loss and task metrics over batches without synchronising per batch.

    Few kernel launches per batch (they dominate a small model's step): the sample count is
    kept on the host, where batch sizes are known without a sync, and the loss is added in
    place. loss * n is exact in float64 (a float32 times an integer below 2**29), so the sums
    are the same, bit for bit, as adding `loss.double() * n`.
    """

    # classification outputs wait in a list and are counted `FOLD_EVERY` batches at a time: five
    # kernels per fold instead of four per batch. Counts are integers, so the grouping cannot
    # change them (a float sum would differ in its last bits, and resumed runs must match exactly).
    FOLD_EVERY = 16

    def __init__(self, task: str, device: torch.device, units: TargetUnits | None = None):
        self.task, self.units = task, units
        self.count = 0  # samples seen
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)  # sum of loss * n
        # correct predictions (classification) or [sum |err|, sum err^2] (regression)
        self.extra = (torch.zeros((), dtype=torch.int64, device=device) if task == "classification"
                      else torch.zeros(2, dtype=torch.float64, device=device))
        self.outputs: list[torch.Tensor] = []  # classification batches not yet counted
        self.targets: list[torch.Tensor] = []

    @torch.no_grad()
    def update(self, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> None:
        n = target.shape[0]
        self.count += n
        self.loss_sum.add_(loss.detach(), alpha=n)
        if self.task == "classification":
            self.outputs.append(output.detach())
            self.targets.append(target)
            if len(self.outputs) >= self.FOLD_EVERY:
                self._fold()
        else:
            err = output.float() - target
            if self.units is not None:
                err = err * self.units.scale
            self.extra += error_sums(err.reshape(n, -1))

    @torch.no_grad()
    def _fold(self) -> None:
        """Count the correct predictions of the batches waiting."""
        if not self.outputs:
            return
        output = torch.cat(self.outputs) if len(self.outputs) > 1 else self.outputs[0]
        target = torch.cat(self.targets) if len(self.targets) > 1 else self.targets[0]
        if output.shape[1] == 1:  # one logit (bce): positive when > 0
            predicted = (output[:, 0] > 0).long()
        else:
            predicted = output.argmax(dim=1)
        self.extra += (predicted == target).sum()
        self.outputs, self.targets = [], []

    def _totals(self) -> torch.Tensor:
        """[sample count, loss sum, extra...] as one float64 tensor (counts are exact below 2**53)."""
        self._fold()
        count = torch.full((1,), float(self.count), dtype=torch.float64, device=self.loss_sum.device)
        return torch.cat([count, self.loss_sum.reshape(1), self.extra.reshape(-1).double()])

    def compute(self, reduce=None) -> dict[str, float]:
        """The metrics of the batches seen. `reduce` (data-parallel runs) sums a float64 tensor over
        the ranks in place: the metrics are then those of every rank's batches together."""
        if reduce is None:
            self._fold()
            if self.count == 0:
                return {}
            values = [float(self.count), *torch.cat([self.loss_sum.reshape(1),
                                                     self.extra.reshape(-1).double()]).tolist()]  # the one host sync
        else:
            values = reduce(self._totals()).tolist()
            if values[0] == 0:
                return {}
        n, values = values[0], values[1:]
        out = {"loss": values[0] / n}
        if self.task == "classification":
            out["accuracy"] = values[1] / n
        else:
            out["mae"] = values[1] / n
            out["rmse"] = math.sqrt(values[2] / n)
            if self.units is not None and self.units.loss in ("mse", "mae"):
                out["loss"] = values[2] / n if self.units.loss == "mse" else values[1] / n
        return out

    def merge_into_first(self, reduce, first: bool) -> None:
        """Sum every rank's sums into the first rank's and empty the others' (before a mid-epoch
        checkpoint, which the first rank writes: it then holds the whole epoch's sums so far, and
        later `compute(reduce)` calls still count every batch once)."""
        totals = reduce(self._totals())
        if not first:
            totals.zero_()
        self.count = int(totals[0].item())
        self.loss_sum = totals[1].clone()
        self.extra = totals[2:].to(self.extra.dtype).reshape(self.extra.shape).clone()

    def state_dict(self) -> dict:
        """For a mid-epoch checkpoint (EpochProgress): the sums exactly as they stand."""
        self._fold()
        return {"count": self.count, "loss_sum": self.loss_sum, "extra": self.extra}

    def load_state_dict(self, state: dict | torch.Tensor) -> None:
        device = self.loss_sum.device
        if isinstance(state, torch.Tensor):  # an earlier format: one float64 tensor [loss*n, n, extra...]
            self.count = int(state[1].item())
            self.loss_sum = state[0].to(device, torch.float64).clone()
            self.extra = state[2:].to(device, self.extra.dtype).reshape(self.extra.shape).clone()
            return
        self.count = int(state["count"])
        self.loss_sum = state["loss_sum"].to(device, torch.float64).clone()
        self.extra = state["extra"].to(device, self.extra.dtype).reshape(self.extra.shape).clone()
