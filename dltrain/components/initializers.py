"""Weight initializers, applied in place to a weight or bias tensor.

Names follow Keras (he_normal, glorot_uniform, lecun_normal) with PyTorch aliases (kaiming_*,
xavier_*). `uniform` and `normal` default to Keras's small ranges (+-0.05, std 0.05), not
torch.nn.init's U(0, 1) and N(0, 1), which are rarely what anyone wants for weights.
Fan-in of a weight is its second dimension times the receptive field (torch's convention), so
the same initializer is right for Linear and Conv layers.
"""

from __future__ import annotations

import math
from typing import Literal

from dltrain.core.registry import Registry
from dltrain.core.types import Finite, NonNegativeFloat, PositiveFloat

# needs_matrix: the rule reads fan-in/fan-out or makes a matrix, so it cannot initialize a 1-D bias
INITIALIZERS = Registry("initializer", facts={"needs_matrix": bool})
register = INITIALIZERS.register
FanMode = Literal["fan_in", "fan_out"]


@register("default", needs_matrix=False,
          description="leave the layer as PyTorch initialized it (Kaiming-uniform with a=sqrt(5) for Linear/Conv)")
def default(tensor, /):
    return tensor  # PyTorch already initialized it when the layer was built


@register("zeros", needs_matrix=False,
          description="all zeros: every unit in a layer stays identical (no symmetry breaking)")
def zeros(tensor, /):
    import torch
    with torch.no_grad():
        return tensor.zero_()


@register("constant", needs_matrix=False, description="every element = value")
def constant(tensor, /, *, value: Finite = 0.0):
    import torch
    with torch.no_grad():
        return tensor.fill_(value)


@register("uniform", needs_matrix=False, description="U(low, high), default +-0.05 as in Keras")
def uniform(tensor, /, *, low: Finite = -0.05, high: Finite = 0.05):
    import torch
    with torch.no_grad():
        return torch.nn.init.uniform_(tensor, low, high)


@register("normal", needs_matrix=False,
          description="N(mean, std^2), default std 0.05 as in Keras; std: 1.0 is the textbook 'standard normal'")
def normal(tensor, /, *, mean: Finite = 0.0, std: NonNegativeFloat = 0.05):
    import torch
    return torch.nn.init.normal_(tensor, mean, std)


@register("truncated_normal", needs_matrix=False,
          description="N(mean, std^2) redrawn outside mean +- 2 std (Keras TruncatedNormal)")
def truncated_normal(tensor, /, *, mean: Finite = 0.0, std: NonNegativeFloat = 0.05):
    import torch
    return torch.nn.init.trunc_normal_(tensor, mean, std, a=mean - 2 * std, b=mean + 2 * std)


@register("xavier_uniform", needs_matrix=True, aliases=("glorot_uniform",),
          description="U(+-gain*sqrt(6/(fan_in+fan_out))): keeps variance for tanh/sigmoid (Glorot 2010)")
def xavier_uniform(tensor, /, *, gain: PositiveFloat = 1.0):
    import torch
    return torch.nn.init.xavier_uniform_(tensor, gain=gain)


@register("xavier_normal", needs_matrix=True, aliases=("glorot_normal",),
          description="N(0, gain^2*2/(fan_in+fan_out)) (Glorot 2010)")
def xavier_normal(tensor, /, *, gain: PositiveFloat = 1.0):
    import torch
    return torch.nn.init.xavier_normal_(tensor, gain=gain)


@register("he_uniform", needs_matrix=True, aliases=("kaiming_uniform",),
          description="U(+-sqrt(6/((1+a^2) fan))): keeps variance for ReLU (He 2015)")
def he_uniform(tensor, /, *, mode: FanMode = "fan_in", negative_slope: NonNegativeFloat = 0.0):
    import torch
    return torch.nn.init.kaiming_uniform_(tensor, a=negative_slope, mode=mode, nonlinearity="leaky_relu")


@register("he_normal", needs_matrix=True, aliases=("kaiming_normal",),
          description="N(0, 2/((1+a^2) fan)): keeps variance for ReLU (He 2015)")
def he_normal(tensor, /, *, mode: FanMode = "fan_in", negative_slope: NonNegativeFloat = 0.0):
    import torch
    return torch.nn.init.kaiming_normal_(tensor, a=negative_slope, mode=mode, nonlinearity="leaky_relu")


@register("lecun_uniform", needs_matrix=True,
          description="U(+-sqrt(3/fan_in)): variance 1/fan_in, for SELU (LeCun 1998)")
def lecun_uniform(tensor, /):
    import torch
    return torch.nn.init.kaiming_uniform_(tensor, mode="fan_in", nonlinearity="linear")


@register("lecun_normal", needs_matrix=True,
          description="truncated N(0, 1/fan_in): for SELU networks (Keras LecunNormal)")
def lecun_normal(tensor, /):
    import torch
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(tensor)
    # Keras draws from a normal truncated at 2 std and rescales so the variance is exactly 1/fan_in.
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
    return torch.nn.init.trunc_normal_(tensor, 0.0, std, a=-2 * std, b=2 * std)


@register("orthogonal", needs_matrix=True,
          description="a (semi-)orthogonal matrix times gain (Saxe 2014); good for recurrent weights")
def orthogonal(tensor, /, *, gain: PositiveFloat = 1.0):
    import torch
    return torch.nn.init.orthogonal_(tensor, gain=gain)
