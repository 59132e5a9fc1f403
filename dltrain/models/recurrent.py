"""Recurrent networks for sequences (N, T, F): rnn, lstm, gru.

The stack is built one layer at a time (a ModuleList of single-layer torch modules) so that
dropout between layers and residual connections across layers sit where the recipe says;
parameter names are `layers.<i>.weight_ih_l0` etc.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Literal

from pydantic import Field

from dltrain.core.errors import KeysError
from dltrain.core.types import Finite, Fraction, PositiveInt
from dltrain.models.layers import InitSpec, check_bias_init, init_weights
from dltrain.models.registry import ARCHITECTURES

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
        raise KeysError(("dropout", "layers"), "dropout acts between stacked layers, and layers is 1; set layers >= 2 or dropout: 0")
    if spec.layers == 1 and spec.residual:
        raise KeysError(("residual", "layers"), "residual connects stacked layers, and layers is 1; set layers >= 2 or residual: false")


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


def _shared(*, hidden_size: PositiveInt = 64, layers: Layers = 1, bidirectional: bool = False,
            output: Output = "last", residual: bool = False, dropout: Fraction = 0.0, init: InitSpec = "xavier_uniform",
            recurrent_init: InitSpec = "orthogonal", bias_init: InitSpec = "zeros"):
    """The recipe parameters every recurrent kind takes (a signature only: never called)."""


def _rnn_own(*, nonlinearity: Literal["tanh", "relu"] = "tanh"):
    """rnn's own parameter."""


def _lstm_own(*, forget_bias: Finite | None = 1.0):
    """lstm's own parameter."""


def _register(kind: str, title: str, own=None) -> None:
    """Register `kind` with the shared parameters and its own: one factory for the three kinds."""
    def factory(input_shape, outputs, /, **params):
        return build_recurrent(kind, input_shape, outputs, **params)

    positional = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_ONLY) for name in ("input_shape", "outputs")]
    keywords = [p for template in (_shared, own) if template is not None
                for p in inspect.signature(template, eval_str=True).parameters.values()]
    factory.__signature__ = inspect.Signature(positional + keywords)  # what the registry reads
    factory.__name__ = kind
    ARCHITECTURES.register(kind, accepts=("sequence",), check=_check, description=(
        f"{title}: `hidden_size`, `layers`, `bidirectional`, `output` last|sequence, `residual` across layers, "
        "`dropout` between layers; Keras-style init unless `init: default` (PyTorch's own, for every parameter)"))(factory)


_register("rnn", "Elman RNN", _rnn_own)
_register("lstm", "LSTM", _lstm_own)
_register("gru", "GRU")
