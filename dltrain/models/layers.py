"""Pieces shared by architectures: weight initialization, normalization, dropout rates."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from dltrain.components import ACTIVATIONS, INITIALIZERS
from dltrain.types import Fraction

ActivationSpec = ACTIVATIONS.spec_type
InitSpec = INITIALIZERS.spec_type
Norm = Literal["none", "batch", "layer"]
NormPosition = Literal["before_activation", "after_activation"]
Dropout = Annotated[Fraction | list[Fraction], Field(union_mode="left_to_right")]

# Initializers that make sense for a 1-D bias (no fan-in/fan-out, no matrix).
BIAS_INITIALIZERS = {"default", "zeros", "constant", "uniform", "normal", "truncated_normal"}


def check_bias_init(spec) -> None:
    name = spec.bias_init.name
    if name not in BIAS_INITIALIZERS:
        raise ValueError(f"bias_init `{name}` needs a weight matrix (fan-in/fan-out); "
                         f"for biases choose one of: {', '.join(sorted(BIAS_INITIALIZERS))}")


def dropout_rates(dropout, layers: int) -> list[float]:
    return list(dropout) if isinstance(dropout, list) else [float(dropout)] * layers


def check_dropout(dropout, layers: int) -> None:
    if isinstance(dropout, list) and len(dropout) != layers:
        raise ValueError(f"dropout has {len(dropout)} rates but there are {layers} hidden layers; "
                         "expected one rate, or one per hidden layer")


def init_weights(module, init, bias_init) -> None:
    """Apply `init` to every weight matrix (Linear, Conv) and `bias_init` to their biases.

    Normalization layers keep their identity start (weight 1, bias 0): re-initializing them
    with a fan-based rule would be meaningless.
    """
    from torch import nn
    weighted = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    for layer in module.modules():
        if isinstance(layer, weighted):
            if init.name != "default":
                INITIALIZERS.build(init, layer.weight)
            if layer.bias is not None and bias_init.name != "default":
                INITIALIZERS.build(bias_init, layer.bias)


def norm_layer(kind: str, features: int):
    from torch import nn
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    return None
