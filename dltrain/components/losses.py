"""Loss functions: torch.nn losses. Regression targets are (N, k) floats, class targets (N,) ints."""

from __future__ import annotations

from dltrain.core.registry import Registry
from dltrain.core.types import Fraction, PositiveFloat, Task

# task: the data a loss fits, checked against the dataset before anything runs
LOSSES = Registry("loss", plural="losses", facts={"task": Task})
register = LOSSES.register


@register("cross_entropy", task="classification",
          description="softmax cross-entropy on logits; label_smoothing, class_weights")
def cross_entropy(*, label_smoothing: Fraction = 0.0, class_weights: list[PositiveFloat] | None = None):
    import torch
    weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
    return torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)


@register("bce", task="classification",
          description="binary cross-entropy on one logit (sigmoid inside); pos_weight for imbalance")
def bce(*, pos_weight: PositiveFloat | None = None):
    import torch
    weight = None if pos_weight is None else torch.tensor([pos_weight], dtype=torch.float32)
    return _BinaryLogits(torch.nn.BCEWithLogitsLoss(pos_weight=weight))


@register("mse", task="regression", aliases=("l2",), description="mean squared error")
def mse():
    import torch
    return torch.nn.MSELoss()


@register("mae", task="regression", aliases=("l1",), description="mean absolute error")
def mae():
    import torch
    return torch.nn.L1Loss()


@register("huber", task="regression", description="squared below delta, linear above: robust to outliers")
def huber(*, delta: PositiveFloat = 1.0):
    import torch
    return torch.nn.HuberLoss(delta=delta)


def _BinaryLogits(inner):
    """Adapt BCEWithLogits to (N, 1) logits and (N,) integer labels."""
    import torch

    class BinaryLogitsLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, logits, target):
            return self.inner(logits.reshape(-1), target.to(logits.dtype))

    return BinaryLogitsLoss()
