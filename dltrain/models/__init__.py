"""Architectures: a registry of builders `(input_shape, outputs) -> nn.Module`."""

from dltrain.models.registry import ARCHITECTURES, ModelSpec
from dltrain.models import mlp, conv, recurrent, external  # noqa: F401  (register the architectures)
from dltrain.models.build import build_model

__all__ = ["ARCHITECTURES", "ModelSpec", "build_model"]
