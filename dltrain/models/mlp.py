"""The multilayer perceptron: Linear -> [norm] -> activation -> [norm] -> dropout, per hidden layer."""

from __future__ import annotations

import math

from dltrain.components import ACTIVATIONS
from dltrain.core.types import PositiveInt
from dltrain.models.layers import (ActivationSpec, Dropout, InitSpec, Norm, NormPosition, check_bias_init,
                                   check_dropout, dropout_rates, init_weights, norm_layer)
from dltrain.models.registry import ARCHITECTURES


def _check(spec) -> None:
    check_dropout(spec.dropout, len(spec.hidden))
    check_bias_init(spec)


@ARCHITECTURES.register("mlp", accepts=("flat", "sequence", "image"), check=_check,
                        description="fully connected layers `hidden`, each: linear, norm, activation, dropout")
def mlp(input_shape, outputs, /, *, hidden: list[PositiveInt] = [256, 128],
        activation: ActivationSpec = "relu", init: InitSpec = "default", bias_init: InitSpec = "zeros",
        norm: Norm = "none", norm_position: NormPosition = "before_activation", dropout: Dropout = 0.0,
        alpha_dropout: bool = False, residual: bool = False):
    import torch
    from torch import nn

    class Block(nn.Module):
        """One hidden layer; with `residual`, adds its input (projected when the width changes)."""

        def __init__(self, fan_in: int, width: int, rate: float):
            super().__init__()
            self.adds_input = residual  # read by the diagnostics: the stream's gradient enters here
            self.linear = nn.Linear(fan_in, width)
            norm_module = norm_layer(norm, width)
            self.norm_before = norm_module if norm_position == "before_activation" else None
            self.activation = ACTIVATIONS.build(activation)
            self.norm_after = norm_module if norm_position == "after_activation" else None
            dropout_cls = nn.AlphaDropout if alpha_dropout else nn.Dropout
            self.dropout = dropout_cls(rate) if rate > 0 else None
            self.skip = None
            if residual and fan_in != width:
                self.skip = nn.Linear(fan_in, width, bias=False)  # projection shortcut (He et al. 2016)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.linear(x)
            if self.norm_before is not None:
                out = self.norm_before(out)
            out = self.activation(out)
            if self.norm_after is not None:
                out = self.norm_after(out)
            if self.dropout is not None:
                out = self.dropout(out)
            if residual:
                out = out + (x if self.skip is None else self.skip(x))
            return out

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            fan_in = math.prod(input_shape)
            rates = dropout_rates(dropout, len(hidden))
            blocks = []
            for width, rate in zip(hidden, rates):
                blocks.append(Block(fan_in, width, rate))
                fan_in = width
            self.layers = nn.Sequential(*blocks)
            self.head = nn.Linear(fan_in, outputs)  # logits or regression outputs

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.layers(x.flatten(1)))  # (B, *input_shape) -> (B, outputs)

    model = MLP()
    init_weights(model, init, bias_init)
    return model
