"""K MLPs of one architecture as one module: every parameter and buffer stacked on a leading model
axis, linear layers as batched matrix products on (K, B, features) activations.

Each member starts as an ordinary MLP (models/mlp.py) built from its own seed; the stack copies
their tensors in, trains them together, and copies them back out (`copy_to`) whenever a member's
own module must be read: its checkpoints, its test pass. The stacked parameters are named as the
member's, with `.` written `__` (a module attribute cannot hold a dot), and come in the member's
parameter order, so an elementwise torch.optim optimizer over them keeps, for each member, the
state a lone run's optimizer would hold, at index k of each state tensor.

Dropout draws each member's mask from that member's own generator, as nn.Dropout draws it on the
CPU (a bernoulli_ tensor the batch's shape, divided by 1 - p): a member whose generator starts
where a lone run's global generator stood sees the lone run's masks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def why_not_stackable(model) -> str | None:
    """Why this model cannot join a stack (None when it can): only dltrain's own MLP, with
    parameter-free activations and plain dropout, is covered."""
    if type(model).__name__ != "MLP" or not hasattr(model, "layers"):
        return f"the `{type(model).__name__}` architecture is not stacked (only mlp is)"
    for block in model.layers:
        if any(True for _ in block.activation.parameters()):
            return "an activation with learned parameters (prelu) is not stacked"
        if block.dropout is not None and type(block.dropout) is not nn.Dropout:
            return "alpha_dropout is not stacked"
    return None


def _key(name: str) -> str:
    return name.replace(".", "__")


class StackedMLP(nn.Module):
    """The members' MLPs side by side. forward takes (K, B, *input_shape), returns (K, B, outputs)."""

    def __init__(self, members: list[nn.Module], generators: list[torch.Generator]):
        super().__init__()
        first = members[0]
        self.k = len(members)
        self.generators = generators  # one per member: its dropout masks
        self.names = [name for name, _ in first.named_parameters()]  # the member's parameter order
        self.buffer_names = [name for name, _ in first.named_buffers()]
        with torch.no_grad():
            for name in self.names:
                stacked = torch.stack([dict(m.named_parameters())[name].detach() for m in members])
                self.register_parameter(_key(name), nn.Parameter(stacked.clone()))
            for name in self.buffer_names:
                self.register_buffer(_key(name), torch.stack([dict(m.named_buffers())[name] for m in members]).clone())
        self.blocks = [self._describe(i, block) for i, block in enumerate(first.layers)]

    @staticmethod
    def _describe(i: int, block) -> dict:
        def norm(module, name):
            if module is None:
                return None
            kind = "batch" if isinstance(module, nn.BatchNorm1d) else "layer"
            return {"kind": kind, "prefix": f"layers.{i}.{name}", "eps": module.eps,
                    "momentum": getattr(module, "momentum", None)}
        return {"prefix": f"layers.{i}", "before": norm(block.norm_before, "norm_before"),
                "activation": block.activation, "after": norm(block.norm_after, "norm_after"),
                "rate": block.dropout.p if block.dropout is not None else 0.0,
                "residual": block.adds_input, "skip": block.skip is not None}

    def tensor(self, name: str) -> torch.Tensor:
        return getattr(self, _key(name))

    def stacked_parameters(self) -> list[nn.Parameter]:
        """In the member's parameter order: index i here is parameter i of each member."""
        return [self.tensor(name) for name in self.names]

    def _linear(self, x: torch.Tensor, prefix: str, bias: bool = True) -> torch.Tensor:
        weight = self.tensor(f"{prefix}.weight")  # (K, out, in), as each member's nn.Linear holds it
        if not bias:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(self.tensor(f"{prefix}.bias").unsqueeze(1), x, weight.transpose(1, 2))

    def _norm(self, x: torch.Tensor, spec: dict) -> torch.Tensor:
        p = spec["prefix"]
        weight, bias = self.tensor(f"{p}.weight"), self.tensor(f"{p}.bias")
        k, b, c = x.shape
        if spec["kind"] == "layer":
            return F.layer_norm(x, (c,), eps=spec["eps"]) * weight.unsqueeze(1) + bias.unsqueeze(1)
        # batch norm per member and feature: the members' features side by side as K*C channels
        if self.training:
            self.tensor(f"{p}.num_batches_tracked").add_(1)
        flat = x.transpose(0, 1).reshape(b, k * c)
        out = F.batch_norm(flat, self.tensor(f"{p}.running_mean").view(-1), self.tensor(f"{p}.running_var").view(-1),
                           weight.reshape(-1), bias.reshape(-1), self.training, spec["momentum"], spec["eps"])
        return out.reshape(b, k, c).transpose(0, 1)

    def _dropout(self, x: torch.Tensor, rate: float) -> torch.Tensor:
        noise = torch.stack([torch.empty(x.shape[1:], dtype=x.dtype, device=x.device).bernoulli_(1 - rate, generator=g)
                             for g in self.generators])
        noise.div_(1 - rate)
        return x * noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2)
        for block in self.blocks:
            out = self._linear(x, f"{block['prefix']}.linear")
            if block["before"] is not None:
                out = self._norm(out, block["before"])
            out = block["activation"](out)
            if block["after"] is not None:
                out = self._norm(out, block["after"])
            if block["rate"] > 0 and self.training:
                out = self._dropout(out, block["rate"])
            if block["residual"]:
                out = out + (self._linear(x, f"{block['prefix']}.skip", bias=False) if block["skip"] else x)
            x = out
        return self._linear(x, "head")

    @torch.no_grad()
    def copy_to(self, k: int, member: nn.Module) -> None:
        """Member k's parameters and buffers into its own module (same names, same shapes)."""
        for name, tensor in member.state_dict(keep_vars=True).items():
            tensor.data.copy_(self.tensor(name)[k])
