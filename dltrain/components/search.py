"""Search methods and pruners by name: Optuna's own samplers and pruners, not re-written ones.

Like every component of a recipe, each is a bare name (`pruner: hyperband`) or a mapping with
`name` and its parameters (`pruner: {name: median, n_warmup_steps: 2}`); the keyword-only
parameters of a factory are the recipe parameters. optuna is imported inside the factories, so
validating a recipe stays light.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dltrain.core.registry import Registry
from dltrain.core.types import NonNegativeInt, PositiveInt

AtLeastTwo = Annotated[int, Field(ge=2)]

METHODS = Registry("method", what="sweep method")
PRUNERS = Registry("pruner")


@METHODS.register("grid", description="every combination of the choices, each run exactly once "
                                      "(queued in the Optuna study)")
def grid(seed: int, grid_values: dict, /):
    # Every point is put in the study's trial queue with its values fixed (driver.py), which is
    # what makes "each point exactly once" hold with many workers; the sampler records the grid.
    import optuna
    return optuna.samplers.GridSampler(grid_values, seed=seed)


@METHODS.register("random", description="independent uniform (or log-uniform) draws (Optuna's RandomSampler)")
def random(seed: int, grid_values: dict, /):
    import optuna
    return optuna.samplers.RandomSampler(seed=seed)


@METHODS.register("bayes", aliases=("tpe",),
                  description="Bayesian optimization with a Tree-structured Parzen Estimator (Optuna's TPESampler)")
def bayes(seed: int, grid_values: dict, /, *, n_startup_trials: NonNegativeInt = 10,
          multivariate: bool = False, constant_liar: bool = False):
    # n_startup_trials: random trials before the model is used; constant_liar: treat running
    # trials as bad so that parallel workers do not all propose the same point.
    import optuna
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials,
                                      multivariate=multivariate, constant_liar=constant_liar)


@PRUNERS.register("none", description="never stop a trial early")
def no_pruner(max_resource: int, /):
    import optuna
    return optuna.pruners.NopPruner()


@PRUNERS.register("median", description="stop a trial whose value is worse than the median of earlier trials "
                                        "at the same epoch (Optuna's MedianPruner)")
def median(max_resource: int, /, *, n_startup_trials: NonNegativeInt = 5, n_warmup_steps: NonNegativeInt = 0):
    # n_startup_trials: trials that are never pruned; n_warmup_steps: epochs before pruning starts
    import optuna
    return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps)


@PRUNERS.register("hyperband", description="successive halving in several brackets (Optuna's HyperbandPruner); "
                                           "the budget is epochs x seeds")
def hyperband(max_resource: int, /, *, min_resource: PositiveInt = 1, reduction_factor: AtLeastTwo = 3):
    # min_resource: epochs every trial gets; reduction_factor: 1/reduction_factor of the trials
    # go on at each rung.
    import optuna
    return optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=max_resource,
                                          reduction_factor=reduction_factor)
