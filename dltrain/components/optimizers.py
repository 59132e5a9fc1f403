"""Optimizers: torch.optim's own implementations under the names the textbooks use.

`gd` and `sgd` are the same update (torch.optim.SGD); what makes `gd` batch gradient descent is
`data.batch_size: full`. `foreach` is asked for so that the update of all parameters is a few
fused kernel launches instead of a Python loop per tensor (the dominant cost on small models).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dltrain.core.registry import Registry
from dltrain.core.types import NonNegativeFloat, PositiveFloat

OPTIMIZERS = Registry("optimizer")
register = OPTIMIZERS.register
Momentum = Annotated[float, Field(ge=0, lt=1)]
Beta = Annotated[float, Field(ge=0, lt=1)]


@register("gd", description="gradient descent w <- w - lr*g (batch GD with batch_size: full)")
def gd(params, /, *, lr: PositiveFloat = 0.01, weight_decay: NonNegativeFloat = 0.0):
    import torch
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, foreach=True)


@register("sgd", description="stochastic (mini-batch) gradient descent, torch.optim.SGD")
def sgd(params, /, *, lr: PositiveFloat = 0.01, weight_decay: NonNegativeFloat = 0.0):
    import torch
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, foreach=True)


@register("momentum", description="SGD with heavy-ball momentum v <- m*v + g; w <- w - lr*v")
def momentum(params, /, *, lr: PositiveFloat = 0.01, momentum: Momentum = 0.9,
             dampening: Momentum = 0.0, weight_decay: NonNegativeFloat = 0.0):
    import torch
    return torch.optim.SGD(params, lr=lr, momentum=momentum, dampening=dampening,
                           weight_decay=weight_decay, foreach=True)


@register("nesterov", description="SGD with Nesterov momentum (look-ahead gradient)")
def nesterov(params, /, *, lr: PositiveFloat = 0.01, momentum: Annotated[float, Field(gt=0, lt=1)] = 0.9,
             weight_decay: NonNegativeFloat = 0.0):
    import torch
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True,
                           weight_decay=weight_decay, foreach=True)


@register("adagrad", description="per-parameter lr scaled by the root of summed squared gradients")
def adagrad(params, /, *, lr: PositiveFloat = 0.01, lr_decay: NonNegativeFloat = 0.0,
            eps: PositiveFloat = 1e-10, weight_decay: NonNegativeFloat = 0.0):
    import torch
    return torch.optim.Adagrad(params, lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay, foreach=True)


@register("rmsprop", description="divide by a running RMS of gradients (Hinton); alpha = smoothing")
def rmsprop(params, /, *, lr: PositiveFloat = 0.001, alpha: Beta = 0.99, eps: PositiveFloat = 1e-8,
            momentum: Momentum = 0.0, centered: bool = False, weight_decay: NonNegativeFloat = 0.0):
    import torch
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum, centered=centered,
                               weight_decay=weight_decay, foreach=True)


@register("adam", description="momentum + RMSProp with bias correction (Kingma & Ba 2015)")
def adam(params, /, *, lr: PositiveFloat = 0.001, betas: tuple[Beta, Beta] = (0.9, 0.999),
         eps: PositiveFloat = 1e-8, weight_decay: NonNegativeFloat = 0.0, amsgrad: bool = False):
    import torch
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                            amsgrad=amsgrad, foreach=True)


@register("adamw", description="Adam with decoupled weight decay (Loshchilov & Hutter 2019)")
def adamw(params, /, *, lr: PositiveFloat = 0.001, betas: tuple[Beta, Beta] = (0.9, 0.999),
          eps: PositiveFloat = 1e-8, weight_decay: NonNegativeFloat = 0.01, amsgrad: bool = False):
    import torch
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                             amsgrad=amsgrad, foreach=True)


@register("nadam", description="Adam with Nesterov momentum (Dozat 2016)")
def nadam(params, /, *, lr: PositiveFloat = 0.002, betas: tuple[Beta, Beta] = (0.9, 0.999),
          eps: PositiveFloat = 1e-8, weight_decay: NonNegativeFloat = 0.0):
    import torch
    return torch.optim.NAdam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=True)


@register("radam", description="Adam with a rectified (warmup-free) adaptive term (Liu 2020)")
def radam(params, /, *, lr: PositiveFloat = 0.001, betas: tuple[Beta, Beta] = (0.9, 0.999),
          eps: PositiveFloat = 1e-8, weight_decay: NonNegativeFloat = 0.0):
    import torch
    return torch.optim.RAdam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=True)
