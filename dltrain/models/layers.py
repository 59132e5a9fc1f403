"""Pieces shared by architectures: weight initialization, normalization, dropout rates."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from dltrain.components import ACTIVATIONS, INITIALIZERS
from dltrain.core.errors import KeysError
from dltrain.core.words import plural
from dltrain.core.types import Fraction

ActivationSpec = ACTIVATIONS.spec_type
InitSpec = INITIALIZERS.spec_type
Norm = Literal["none", "batch", "layer"]
NormPosition = Literal["before_activation", "after_activation"]
Dropout = Annotated[Fraction | list[Fraction], Field(union_mode="left_to_right")]

def check_bias_init(spec) -> None:
    name = spec.bias_init.name
    if INITIALIZERS.entry(name).facts["needs_matrix"]:
        for_bias = sorted(e.name for e in INITIALIZERS.entries() if not e.facts["needs_matrix"])
        raise KeysError(("bias_init",), f"bias_init `{name}` needs a weight matrix (fan-in/fan-out); "
                         f"for biases choose one of: {', '.join(for_bias)}")


def dropout_rates(dropout, layers: int) -> list[float]:
    return list(dropout) if isinstance(dropout, list) else [float(dropout)] * layers


def check_dropout(dropout, layers: int) -> None:
    if isinstance(dropout, list) and len(dropout) != layers:
        raise KeysError(("dropout",), f"dropout has {plural(len(dropout), 'rate')} but there "
                        f"{'is' if layers == 1 else 'are'} {plural(layers, 'hidden layer')}; "
                         "expected one rate, or one per hidden layer")


def init_weights(module, init, bias_init, recurrent_init=None) -> None:
    """Apply `init` to every weight (Linear, Conv, recurrent input weights) and `bias_init` to biases.

    Conv fan-in is in_channels x kernel area (torch's convention, which the initializers use).
    Recurrent layers stack their gates in one matrix ((gates*hidden, in) for LSTM/GRU): each
    gate's block is initialized on its own, so fan-out is `hidden`, not `gates*hidden`, and
    `orthogonal` makes every gate's square hidden-to-hidden block orthogonal. `recurrent_init`
    (default: `init`) is for the hidden-to-hidden weights.
    Normalization layers keep their identity start (weight 1, bias 0): re-initializing them
    with a fan-based rule would be meaningless.
    """
    from torch import nn
    weighted = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    recurrent_init = recurrent_init or init
    for layer in module.modules():
        if isinstance(layer, weighted):
            if init.name != "default":
                INITIALIZERS.build(init, layer.weight)
            if layer.bias is not None and bias_init.name != "default":
                INITIALIZERS.build(bias_init, layer.bias)
        elif isinstance(layer, nn.RNNBase):
            for name, param in layer.named_parameters(recurse=False):
                spec = (recurrent_init if name.startswith("weight_hh") else
                        init if name.startswith("weight_") else bias_init)
                if spec.name != "default":
                    for block in gate_blocks(param, layer.hidden_size):
                        INITIALIZERS.build(spec, block)


def gate_blocks(param, hidden_size: int) -> list:
    """Views of a recurrent parameter, one per gate (LSTM: i, f, g, o; GRU: r, z, n; RNN: one)."""
    data = param.detach()  # shares storage: writing a block writes the parameter
    return [data[i:i + hidden_size] for i in range(0, data.shape[0], hidden_size)]


def norm_layer(kind: str, features: int, spatial: bool = False):
    """batch -> BatchNorm1d/2d; layer -> LayerNorm, or for feature maps GroupNorm with one group
    (normalizes over channels, height and width per sample, as LayerNorm does, with per-channel gains)."""
    from torch import nn
    if kind == "batch":
        return nn.BatchNorm2d(features) if spatial else nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.GroupNorm(1, features) if spatial else nn.LayerNorm(features)
    return None
