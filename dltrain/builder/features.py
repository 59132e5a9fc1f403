"""A run's callbacks: the feature registry walked in order, each feature made when its recipe key
turns it on (features/registry.py holds the features, their order and their keys)."""

from __future__ import annotations

from dltrain.builder.objects import Built
from dltrain.features.registry import ALWAYS, FEATURES, GIVEN, FeatureContext
from dltrain.recipe.schema import Recipe
from dltrain.rundir.writer import RunDir


def recipe_value(recipe: Recipe, key: str):
    """The value at a dotted recipe key: `log.tensorboard` -> recipe.log.tensorboard."""
    value = recipe
    for part in key.split("."):
        value = getattr(value, part)
    return value


def build_callbacks(built: Built, run: RunDir, *, resumed: bool = False, given: dict | None = None) -> list:
    """Every feature the recipe turns on, in registry order, each named by its feature's state name.
    `given` holds the callbacks of GIVEN features, by name (progress: the verb's display; sweep_pruning)."""
    given = {name: cb for name, cb in (given or {}).items() if cb is not None}
    unknown = set(given) - {f.name for f in FEATURES if f.on == GIVEN}
    if unknown:
        raise ValueError(f"not features whose callback is given: {', '.join(sorted(unknown))}")
    recipe = built.recipe
    context = FeatureContext(run=run, monitor=built.monitor, mode=built.mode, min_delta=built.min_delta,
                             train_loader=built.loaders["train"], recipe=recipe.to_dict(), resumed=resumed)
    callbacks = []
    for feature in FEATURES:
        if feature.on == GIVEN:
            callback = given.get(feature.name)
        elif feature.on == ALWAYS or recipe_value(recipe, feature.on):
            settings = {arg: recipe_value(recipe, key) for arg, key in feature.settings.items()}
            callback = feature.make(context, **settings)
        else:
            callback = None
        if callback is not None:
            callback.state_name = feature.name
            callbacks.append(callback)
    return callbacks
