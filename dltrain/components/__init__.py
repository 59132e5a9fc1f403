"""Component registries: activations, initializers, optimizers, schedules, losses."""

from dltrain.components.activations import ACTIVATIONS
from dltrain.components.initializers import INITIALIZERS
from dltrain.components.losses import LOSSES
from dltrain.components.optimizers import OPTIMIZERS
from dltrain.components.schedules import SCHEDULES

__all__ = ["ACTIVATIONS", "INITIALIZERS", "LOSSES", "OPTIMIZERS", "SCHEDULES"]
