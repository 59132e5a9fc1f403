"""The architecture registry; `model.arch` picks the entry."""

from dltrain.registry import Registry, Spec


class ModelSpec(Spec):
    """Keys every architecture shares (transfer-learning keys arrive with the architectures issue)."""


ARCHITECTURES = Registry("architecture", tag="arch", base=ModelSpec)
