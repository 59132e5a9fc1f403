"""Every feature a run can have, registered once: its place among the run's callbacks, the key its
state is saved under in checkpoints, and the recipe key that turns it on.

The builder walks FEATURES in order to make a run's callbacks (builder/features.py); nothing else
lists them. `fire` calls callbacks in this order, and the first StopTraining raised during an event
is the one the run reports, so a feature's place is part of its behaviour: each rule that fixes a
place is an `after` entry with its reason, checked when the feature is registered.

Adding a feature: its callback in a module of this folder, one `FEATURES.register(...)` below (and
its recipe key in recipe/schema.py when it is turned on by one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dltrain.rundir.writer import RunDir
from dltrain.train.events import Callback

ALWAYS = "always"  # `on` of a feature every run has
GIVEN = "given"  # `on` of a feature whose callback the caller makes (the verb's display, the sweep's trial)


@dataclass(frozen=True)
class FeatureContext:
    """What a feature is made from besides its recipe settings (the builder fills it in)."""

    run: RunDir
    monitor: str  # the metric best.pt tracks, with its mode and the improvement that counts
    mode: str
    min_delta: float
    train_loader: Any
    recipe: dict  # the whole recipe as plain data: HParams records every key
    resumed: bool  # continuing a run directory from its checkpoint


@dataclass(frozen=True)
class Feature:
    name: str  # the key of its state in checkpoints: never rename one (put the old name in `formerly`)
    order: int  # its place among the run's callbacks: lower fires first
    on: str  # the recipe key that turns it on (its value is truthy), or ALWAYS, or GIVEN
    make: Callable[..., Callback] | None  # (context, **settings) -> callback; None for a GIVEN feature
    settings: dict[str, str] = field(default_factory=dict)  # make's keyword -> the recipe key it comes from
    after: tuple[str, ...] = ()  # features that must fire before this one
    why: str = ""  # the reason for its place
    formerly: tuple[str, ...] = ()  # names its state was saved under before (class names, before this registry)


class Features:
    def __init__(self) -> None:
        self._features: dict[str, Feature] = {}

    def register(self, feature: Feature) -> Feature:
        if feature.name in self._features:
            raise ValueError(f"feature `{feature.name}` is registered twice")
        taken = {f.order: f.name for f in self._features.values()}
        if feature.order in taken:
            raise ValueError(f"feature `{feature.name}`: order {feature.order} is `{taken[feature.order]}`'s")
        if (feature.make is None) != (feature.on == GIVEN):
            raise ValueError(f"feature `{feature.name}`: a feature has `make` unless its callback is given")
        for earlier in feature.after:
            if earlier not in self._features:
                raise ValueError(f"feature `{feature.name}` must come after `{earlier}`, which is not registered "
                                 f"(register it first)")
            if self._features[earlier].order >= feature.order:
                raise ValueError(f"feature `{feature.name}` (order {feature.order}) must come after `{earlier}` "
                                 f"(order {self._features[earlier].order}): {feature.why}")
        self._features[feature.name] = feature
        return feature

    def __iter__(self):
        return iter(sorted(self._features.values(), key=lambda f: f.order))

    def __getitem__(self, name: str) -> Feature:
        return self._features[name]

    def saved_state(self, saved: dict, name: str) -> dict | None:
        """A callback's state in a checkpoint's `callbacks`, under its name or one it had before."""
        feature = self._features.get(name)
        for key in (name, *(feature.formerly if feature else ())):
            if key in saved:
                return saved[key]
        return None


FEATURES = Features()


def _hparams(ctx: FeatureContext) -> Callback:
    from dltrain.features.hparams import HParams
    return HParams(ctx.run.path, ctx.recipe, resumed=ctx.resumed)


def _diagnostics(ctx: FeatureContext, every: int, tensorboard: bool, budget: float) -> Callback:
    from dltrain.diagnostics.probes import fixed_batch
    from dltrain.features.diagnostics import Diagnostics
    return Diagnostics(ctx.run, fixed_batch(ctx.train_loader), every, tensorboard=tensorboard,
                       model_facts=model_facts(ctx.recipe["model"]), budget=budget)


def model_facts(model: dict) -> dict:
    """The model keys divergence advice takes into account; None where the architecture has no such key."""
    def name(key: str) -> str | None:
        spec = model.get(key)
        return spec.get("name") if isinstance(spec, dict) else spec
    return {"init": name("init"), "activation": name("activation"), "norm": model.get("norm")}


def _train_eval(ctx: FeatureContext) -> Callback:
    from dltrain.data.loader import ArrayLoader
    from dltrain.features.train_eval import TrainEval
    train = ctx.train_loader  # its own unshuffled pass: the data-order stream is not touched
    return TrainEval(ArrayLoader(train.x, train.y, max(train.batch_size, 1024), shuffle=False))


def _nonfinite(ctx: FeatureContext) -> Callback:
    from dltrain.features.nonfinite import NonFiniteGuard
    return NonFiniteGuard()


def _early_stopping(ctx: FeatureContext, **settings) -> Callback:
    from dltrain.features.early_stopping import EarlyStopping
    return EarlyStopping(**settings)


def _metrics_file(ctx: FeatureContext) -> Callback:
    from dltrain.features.metrics_file import MetricsFile
    return MetricsFile(ctx.run)


def _tensorboard(ctx: FeatureContext, histograms: bool) -> Callback:
    from dltrain.features.tensorboard import TensorBoard
    return TensorBoard(ctx.run, histograms=histograms)


def _checkpoints(ctx: FeatureContext) -> Callback:
    from dltrain.features.checkpoints import Checkpointer
    return Checkpointer(ctx.run, ctx.monitor, ctx.mode, ctx.min_delta)


FEATURES.register(Feature(
    "hparams", 10, on="log.tensorboard", make=_hparams,
    why="first: the HParams session starts before any other feature's on_fit_start can fail"))
FEATURES.register(Feature(
    "train_eval", 15, on="log.train_eval", make=_train_eval,
    why="before every feature that records or judges an epoch's logs: they all see its train_eval_* columns"))
FEATURES.register(Feature(
    "diagnostics", 20, on="log.diagnostics", make=_diagnostics,
    settings={"every": "log.diagnostics_every", "tensorboard": "log.tensorboard",
              "budget": "log.diagnostics_budget"}, formerly=("Diagnostics",)))
FEATURES.register(Feature(
    "nonfinite", 30, on=ALWAYS, make=_nonfinite, after=("diagnostics",), formerly=("NonFiniteGuard",),
    why="Diagnostics' stop reason, which names the layer that diverged, wins over the guard's"))
FEATURES.register(Feature(
    "early_stopping", 40, on="train.early_stopping", make=_early_stopping,
    settings={"monitor": "train.early_stopping.monitor", "mode": "train.early_stopping.mode",
              "patience": "train.early_stopping.patience", "min_delta": "train.early_stopping.min_delta",
              "restore_best": "train.early_stopping.restore_best"},
    after=("nonfinite",), formerly=("EarlyStopping",),
    why="a non-finite loss ends the run as diverged, not as `did not improve`"))
FEATURES.register(Feature("metrics_file", 50, on=ALWAYS, make=_metrics_file, formerly=("MetricsFile",)))
FEATURES.register(Feature(
    "tensorboard", 60, on="log.tensorboard", make=_tensorboard, settings={"histograms": "log.histograms"},
    formerly=("TensorBoard",)))
FEATURES.register(Feature(
    "sweep_pruning", 70, on=GIVEN, make=None, after=("nonfinite",), formerly=("OptunaReport",),
    why="made by `dltrain sweep` for each trial (sweep.pruner); a diverged run is reported as diverged, not pruned"))
FEATURES.register(Feature(
    "checkpoint", 80, on=ALWAYS, make=_checkpoints, after=("early_stopping", "sweep_pruning"),
    formerly=("Checkpointer",),
    why="after every stateful callback: the checkpoint of an epoch holds their state after that epoch"))
FEATURES.register(Feature(
    "progress", 90, on=GIVEN, make=None, after=("checkpoint",), formerly=("PlainProgress", "LiveProgress"),
    why="made by `dltrain run`/`resume` for the console; last: an epoch is shown once its records are written"))
