"""Recurrent networks for sequences (N, T, F): rnn, lstm, gru.

The stack is built one layer at a time (a ModuleList of single-layer torch modules) so that
dropout between layers and residual connections across layers sit where the recipe says;
parameter names are `layers.<i>.weight_ih_l0` etc.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from dltrain.core.types import Finite, Fraction, PositiveInt
from dltrain.models.layers import InitSpec, check_bias_init, init_weights
from dltrain.models.registry import ARCHITECTURES, accepts

Output = Literal["last", "sequence"]
Layers = Annotated[int, Field(ge=1, le=16)]


# Keys that shape the Keras-style scheme; `init: default` leaves the whole network as torch built it.
KERAS_STYLE = {"recurrent_init": lambda v: v.name == "default", "bias_init": lambda v: v.name == "default",
               "forget_bias": lambda v: v is None}


def _check(spec) -> None:
    check_bias_init(spec)
    if spec.init.name == "default":
        clash = [key for key, is_default in KERAS_STYLE.items()
                 if key in spec.model_fields_set and not is_default(getattr(spec, key))]
        if clash:
            raise ValueError(f"`init: default` leaves every parameter as PyTorch initializes it, so `{clash[0]}` "
                             f"has nothing to change; remove it, or choose an `init` (e.g. xavier_uniform)")
    if spec.layers == 1 and spec.dropout > 0:
        raise ValueError("dropout acts between stacked layers, and layers is 1; set layers >= 2 or dropout: 0")
    if spec.layers == 1 and spec.residual:
        raise ValueError("residual connects stacked layers, and layers is 1; set layers >= 2 or residual: false")


def build_recurrent(kind: str, input_shape, outputs: int, *, hidden_size: int, layers: int, bidirectional: bool,
                    output: str, residual: bool, dropout: float, init, recurrent_init, bias_init,
                    forget_bias: float | None = None, nonlinearity: str = "tanh"):
    import torch
    from torch import nn

    cell = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
    extra = {"nonlinearity": nonlinearity} if kind == "rnn" else {}
    directions = 2 if bidirectional else 1
    width = hidden_size * directions  # features per time step out of every layer

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            features = input_shape[-1]
            self.layers = nn.ModuleList(
                cell(features if i == 0 else width, hidden_size, batch_first=True, bidirectional=bidirectional, **extra)
                for i in range(layers))
            self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
            self.head = nn.Linear(width, outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for i, layer in enumerate(self.layers):
                if i > 0:
                    x = self.dropout(x)  # between layers, as torch's own `dropout` argument
                out, _ = layer(x)  # (B, T, width)
                x = out + x if residual and i > 0 else out  # the first layer changes width: no skip there
            if output == "sequence":
                return self.head(x)  # (B, T, outputs): one prediction per time step
            last = x[:, -1]
            if bidirectional:  # the backward direction has read the whole sequence at step 0
                last = torch.cat([x[:, -1, :hidden_size], x[:, 0, hidden_size:]], dim=1)
            return self.head(last)  # (B, outputs)

    model = Recurrent()
    if init.name == "default":  # PyTorch's reset_parameters, for every weight and bias
        return model
    init_weights(model, init, bias_init, recurrent_init)
    if forget_bias is not None:
        with torch.no_grad():
            for layer in model.layers:
                for name, bias in layer.named_parameters():
                    if name.startswith("bias_"):  # LSTM gates i, f, g, o: the second block is the forget gate
                        bias[hidden_size:2 * hidden_size] = forget_bias if name.startswith("bias_ih") else 0.0
    return model


DESCRIPTION = ("{}: `hidden_size`, `layers`, `bidirectional`, `output` last|sequence, `residual` across layers, "
               "`dropout` between layers; Keras-style init unless `init: default` (PyTorch's own, for every parameter)")


@ARCHITECTURES.register("rnn", check=_check, description=DESCRIPTION.format("Elman RNN"))
@accepts("sequence")
def rnn(input_shape, outputs, /, *, hidden_size: PositiveInt = 64, layers: Layers = 1, bidirectional: bool = False,
        output: Output = "last", residual: bool = False, dropout: Fraction = 0.0,
        nonlinearity: Literal["tanh", "relu"] = "tanh", init: InitSpec = "xavier_uniform",
        recurrent_init: InitSpec = "orthogonal", bias_init: InitSpec = "zeros"):
    return build_recurrent("rnn", input_shape, outputs, hidden_size=hidden_size, layers=layers,
                           bidirectional=bidirectional, output=output, residual=residual, dropout=dropout,
                           init=init, recurrent_init=recurrent_init, bias_init=bias_init, nonlinearity=nonlinearity)


@ARCHITECTURES.register("lstm", check=_check, description=DESCRIPTION.format("LSTM"))
@accepts("sequence")
def lstm(input_shape, outputs, /, *, hidden_size: PositiveInt = 64, layers: Layers = 1, bidirectional: bool = False,
         output: Output = "last", residual: bool = False, dropout: Fraction = 0.0, init: InitSpec = "xavier_uniform",
         recurrent_init: InitSpec = "orthogonal", bias_init: InitSpec = "zeros", forget_bias: Finite | None = 1.0):
    return build_recurrent("lstm", input_shape, outputs, hidden_size=hidden_size, layers=layers,
                           bidirectional=bidirectional, output=output, residual=residual, dropout=dropout,
                           init=init, recurrent_init=recurrent_init, bias_init=bias_init, forget_bias=forget_bias)


@ARCHITECTURES.register("gru", check=_check, description=DESCRIPTION.format("GRU"))
@accepts("sequence")
def gru(input_shape, outputs, /, *, hidden_size: PositiveInt = 64, layers: Layers = 1, bidirectional: bool = False,
        output: Output = "last", residual: bool = False, dropout: Fraction = 0.0, init: InitSpec = "xavier_uniform",
        recurrent_init: InitSpec = "orthogonal", bias_init: InitSpec = "zeros"):
    return build_recurrent("gru", input_shape, outputs, hidden_size=hidden_size, layers=layers,
                           bidirectional=bidirectional, output=output, residual=residual, dropout=dropout,
                           init=init, recurrent_init=recurrent_init, bias_init=bias_init)
