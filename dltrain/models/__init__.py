"""Architectures: a registry of builders `(input_shape, outputs) -> nn.Module`."""

from dltrain.models import conv, external, mlp, recurrent  # noqa: F401  (register the architectures)
from dltrain.models.build import build_model
from dltrain.models.registry import ARCHITECTURES, ModelSpec

__all__ = ["ARCHITECTURES", "ModelSpec", "build_model"]
