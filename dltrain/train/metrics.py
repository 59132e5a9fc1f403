"""Running metric sums kept on the device; read back with one host sync per epoch."""

from __future__ import annotations

import math

import torch


class MetricSums:
    """Accumulates loss and task metrics over batches without synchronising per batch."""

    def __init__(self, task: str, device: torch.device):
        self.task = task
        # [loss*n, n, correct] for classification, [loss*n, n, |err|, err^2] for regression
        size = 3 if task == "classification" else 4
        self.sums = torch.zeros(size, dtype=torch.float64, device=device)

    @torch.no_grad()
    def update(self, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> None:
        n = target.shape[0]
        if self.task == "classification":
            if output.shape[1] == 1:  # one logit (bce): positive when > 0
                predicted = (output[:, 0] > 0).long()
            else:
                predicted = output.argmax(dim=1)
            extra = [(predicted == target).sum()]
        else:
            err = (output.float() - target).reshape(n, -1)
            extra = [err.abs().mean(dim=1).sum(), err.pow(2).mean(dim=1).sum()]
        self.sums += torch.stack([loss.detach().double() * n, torch.tensor(float(n), device=self.sums.device,
                                  dtype=torch.float64), *[e.double() for e in extra]])

    def compute(self) -> dict[str, float]:
        values = self.sums.tolist()  # the one host sync
        n = values[1]
        if n == 0:
            return {}
        out = {"loss": values[0] / n}
        if self.task == "classification":
            out["accuracy"] = values[2] / n
        else:
            out["mae"] = values[2] / n
            out["rmse"] = math.sqrt(values[3] / n)
        return out
