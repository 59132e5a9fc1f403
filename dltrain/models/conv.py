"""Convolutional networks for images (N, C, H, W): a plain CNN and a small ResNet."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from dltrain.components import ACTIVATIONS
from dltrain.core.errors import KeysError, Problem, RecipeError
from dltrain.core.types import Fraction, PositiveInt
from dltrain.models.layers import (ActivationSpec, Dropout, InitSpec, Norm, NormPosition, check_bias_init,
                                   check_dropout, dropout_rates, init_weights, norm_layer)
from dltrain.models.registry import ARCHITECTURES

Pool = Literal["max", "avg", "none"]
OddKernel = Annotated[int, Field(ge=1, le=15)]


def _check_cnn(spec) -> None:
    check_dropout(spec.dropout, len(spec.channels) + len(spec.hidden))
    check_bias_init(spec)
    if spec.kernel_size % 2 == 0:
        raise KeysError(("kernel_size",), f"kernel_size {spec.kernel_size} is even; expected an odd size (3, 5, ...) so that "
                         "'same' padding keeps the feature map centred")


def _unit(layer, width: int, activation, norm: str, norm_position: str, rate: float, spatial: bool):
    """layer -> [norm] -> activation -> [norm] -> [dropout], as in the MLP's hidden layers."""
    from torch import nn
    parts = [layer]
    norm_module = norm_layer(norm, width, spatial=spatial)
    if norm_module is not None and norm_position == "before_activation":
        parts.append(norm_module)
    parts.append(ACTIVATIONS.build(activation))
    if norm_module is not None and norm_position == "after_activation":
        parts.append(norm_module)
    return parts, (nn.Dropout(rate) if rate > 0 else None)


@ARCHITECTURES.register("cnn", accepts=("image",), check=_check_cnn,
                        description="conv blocks `channels` (conv, norm, activation, 2x2 pool, dropout), then a dense head `hidden`")
def cnn(input_shape, outputs, /, *, channels: list[PositiveInt] = [32, 64], kernel_size: OddKernel = 3,
        pool: Pool = "max", hidden: list[PositiveInt] = [128], activation: ActivationSpec = "relu",
        init: InitSpec = "default", bias_init: InitSpec = "zeros", norm: Norm = "none",
        norm_position: NormPosition = "before_activation", dropout: Dropout = 0.0):
    from torch import nn

    in_channels, height, width = input_shape
    rates = dropout_rates(dropout, len(channels) + len(hidden))
    features: list = []
    for i, (width_out, rate) in enumerate(zip(channels, rates)):
        conv = nn.Conv2d(in_channels, width_out, kernel_size, padding=kernel_size // 2)  # 'same' size
        parts, drop = _unit(conv, width_out, activation, norm, norm_position, rate, spatial=True)
        if pool != "none":
            if min(height, width) < 2:
                raise RecipeError([Problem("model.channels", f"block {i + 1} of {len(channels)} would pool a "
                                           f"{height}x{width} feature map below 1x1; use fewer channels entries "
                                           "or pool: none")])
            parts.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
            height, width = height // 2, width // 2
        features += parts + ([drop] if drop else [])
        in_channels = width_out
    dense: list = [nn.Flatten()]  # (B, C, H, W) -> (B, C*H*W)
    fan_in = in_channels * height * width
    for width_out, rate in zip(hidden, rates[len(channels):]):
        parts, drop = _unit(nn.Linear(fan_in, width_out), width_out, activation, norm, norm_position, rate,
                            spatial=False)
        dense += parts + ([drop] if drop else [])
        fan_in = width_out

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*features)
            self.dense = nn.Sequential(*dense)
            self.head = nn.Linear(fan_in, outputs)  # logits or regression outputs

        def forward(self, x):
            return self.head(self.dense(self.features(x)))  # (B, C, H, W) -> (B, outputs)

    model = CNN()
    init_weights(model, init, bias_init)
    return model


def _check_resnet(spec) -> None:
    check_bias_init(spec)
    if (spec.depth - 2) % (2 * spec.stages) != 0:
        valid = [2 * spec.stages * n + 2 for n in (1, 2, 3, 5)]
        raise KeysError(("depth",), f"depth {spec.depth} does not fit {spec.stages} stages of two-conv blocks: "
                         f"depth = {2 * spec.stages}n + 2, e.g. {', '.join(map(str, valid))}")


@ARCHITECTURES.register("resnet", accepts=("image",), check=_check_resnet,
                        description="small residual CNN for 28x28/32x32 images (He et al. 2016, CIFAR variant): "
                                    "depth = 2*stages*n + 2 convolutions")
def resnet(input_shape, outputs, /, *, depth: Annotated[int, Field(ge=4, le=110)] = 8,
           width: PositiveInt = 16, stages: Annotated[int, Field(ge=1, le=4)] = 3,
           activation: ActivationSpec = "relu", init: InitSpec = "he_normal", bias_init: InitSpec = "zeros",
           norm: Norm = "batch", dropout: Fraction = 0.0):
    import torch
    from torch import nn

    blocks_per_stage = (depth - 2) // (2 * stages)

    def conv3(c_in, c_out, stride=1):
        return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=norm == "none")  # norm has its own shift

    def maybe_norm(c):
        return norm_layer(norm, c, spatial=True) or nn.Identity()

    class Block(nn.Module):
        """conv-norm-act-conv-norm, plus the input (a strided 1x1 projection where the shape changes)."""

        adds_input = True  # read by the diagnostics: the stream's gradient enters here

        def __init__(self, c_in: int, c_out: int, stride: int):
            super().__init__()
            self.conv1, self.norm1 = conv3(c_in, c_out, stride), maybe_norm(c_out)
            self.act1 = ACTIVATIONS.build(activation)
            self.conv2, self.norm2 = conv3(c_out, c_out), maybe_norm(c_out)
            self.shortcut = nn.Identity()
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), maybe_norm(c_out))
            self.act2 = ACTIVATIONS.build(activation)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
            return self.act2(out + self.shortcut(x))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            c_in = input_shape[0]
            self.stem = nn.Sequential(conv3(c_in, width), maybe_norm(width), ACTIVATIONS.build(activation))
            stages_list, c = [], width
            for s in range(stages):
                c_out = width * 2 ** s
                stride = 1 if s == 0 else 2  # halve the feature map at each new stage
                stages_list.append(nn.Sequential(*[Block(c if b == 0 else c_out, c_out, stride if b == 0 else 1)
                                                   for b in range(blocks_per_stage)]))
                c = c_out
            self.stages = nn.Sequential(*stages_list)
            self.pool = nn.AdaptiveAvgPool2d(1)  # global average: any input size works
            self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
            self.head = nn.Linear(c, outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.pool(self.stages(self.stem(x))).flatten(1)  # (B, C)
            return self.head(self.dropout(x))

    model = ResNet()
    init_weights(model, init, bias_init)
    return model
