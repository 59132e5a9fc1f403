"""Architectures: a registry of builders `(input_shape, outputs) -> nn.Module`."""

from dltrain.models.registry import ARCHITECTURES, ModelSpec
from dltrain.models import mlp  # noqa: F401  (registers `mlp`)
from dltrain.models.build import build_model

__all__ = ["ARCHITECTURES", "ModelSpec", "build_model"]
