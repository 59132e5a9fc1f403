"""Activation functions: torch.nn modules by Keras-style snake_case names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dltrain.core.registry import Registry
from dltrain.core.types import Finite, PositiveFloat, PositiveInt


@dataclass(frozen=True)
class Probe:
    """How the diagnostics read an activation's outputs; `kind` is the word they record."""

    kind: Literal["relu", "saturating", "other"]
    bounds: tuple[float, float] | None = None  # saturating: the values its outputs approach


DEAD_UNITS = Probe("relu")  # a unit is dead when it outputs zero for every input
MOMENTS = Probe("other")  # mean and spread of the outputs only


def saturates(low: float, high: float) -> Probe:
    return Probe("saturating", (low, high))


ACTIVATIONS = Registry("activation", facts={"probe": Probe})
register = ACTIVATIONS.register


@register("identity", probe=MOMENTS, aliases=("linear",), description="f(x) = x: no nonlinearity")
def identity():
    from torch import nn
    return nn.Identity()


@register("sigmoid", probe=saturates(0.0, 1.0),
          description="1 / (1 + e^-x): saturates at 0 and 1, gradients vanish in deep stacks")
def sigmoid():
    from torch import nn
    return nn.Sigmoid()


@register("tanh", probe=saturates(-1.0, 1.0), description="hyperbolic tangent: zero-centred, saturates at -1 and 1")
def tanh():
    from torch import nn
    return nn.Tanh()


@register("relu", probe=DEAD_UNITS, description="max(0, x): the default for deep nets; units can die")
def relu():
    from torch import nn
    return nn.ReLU()


@register("leaky_relu", probe=MOMENTS, description="x if x > 0 else negative_slope * x: ReLU that cannot die")
def leaky_relu(*, negative_slope: Finite = 0.01):
    from torch import nn
    return nn.LeakyReLU(negative_slope)


@register("prelu", probe=MOMENTS, description="leaky ReLU whose negative slope is learned (one per layer)")
def prelu(*, init: Finite = 0.25, num_parameters: PositiveInt = 1):
    from torch import nn
    return nn.PReLU(num_parameters=num_parameters, init=init)


@register("elu", probe=MOMENTS, description="x if x > 0 else alpha * (e^x - 1): smooth, negative outputs")
def elu(*, alpha: PositiveFloat = 1.0):
    from torch import nn
    return nn.ELU(alpha)


@register("selu", probe=MOMENTS, description="scaled ELU: self-normalizing with lecun_normal init and alpha_dropout")
def selu():
    from torch import nn
    return nn.SELU()


@register("gelu", probe=MOMENTS, description="x * Phi(x): the transformer default; approximate: none|tanh")
def gelu(*, approximate: Literal["none", "tanh"] = "none"):
    from torch import nn
    return nn.GELU(approximate=approximate)


@register("silu", probe=MOMENTS, aliases=("swish",), description="x * sigmoid(x) (swish)")
def silu():
    from torch import nn
    return nn.SiLU()


@register("mish", probe=MOMENTS, description="x * tanh(softplus(x))")
def mish():
    from torch import nn
    return nn.Mish()


@register("softplus", probe=MOMENTS, description="log(1 + e^(beta x)) / beta: a smooth ReLU")
def softplus(*, beta: PositiveFloat = 1.0, threshold: PositiveFloat = 20.0):
    from torch import nn
    return nn.Softplus(beta=beta, threshold=threshold)

