"""From Built to what trains it: optimizer, LR schedule, clipping, penalty, the Learner and the
FitState the loop runs; and the process-wide determinism switch a run asks for."""

from __future__ import annotations

import contextlib
import os

from dltrain.builder.objects import Built
from dltrain.components import OPTIMIZERS, SCHEDULES
from dltrain.recipe.schema import Recipe


@contextlib.contextmanager
def determinism(recipe: Recipe):
    """torch.use_deterministic_algorithms as the recipe asks (train.deterministic), for the run only:
    it is a process-wide switch, put back afterwards."""
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    if recipe.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def build_learner(built: Built):
    """The Learner that trains built.model: optimizer over its trainable parameters, the schedule
    (warmup, then the main multiplier over the remaining epochs), clipping, L1/L2 penalty,
    precision, gradient accumulation, torch.compile."""
    import torch

    from dltrain.train.loop import Clip, Learner, Penalty

    recipe, model = built.recipe, built.model
    optimizer = OPTIMIZERS.build(recipe.optimizer, [p for p in model.parameters() if p.requires_grad])
    schedule = build_schedule(built, optimizer)
    clip = Clip(**recipe.clip.model_dump()) if recipe.clip else None
    trained = torch.compile(model) if recipe.train.compile else model
    return Learner(trained, built.loss_fn, optimizer, schedule, task=built.data.task,
                   penalty=Penalty(recipe.regularization.l1, recipe.regularization.l2), clip=clip,
                   grad_accumulation=recipe.train.grad_accumulation, precision=recipe.train.precision,
                   log_every=recipe.log.every_steps, generator=built.loaders["generator"],
                   augment=built.augment,  # data.augment: training batches only
                   units=target_units(built))


def target_units(built: Built):
    """With standardized regression targets (data.normalize_target), what turns errors back into the
    data's units; None otherwise."""
    import torch

    from dltrain.train.metrics import TargetUnits

    stats = built.data.target_stats
    if stats is None:
        return None
    scale = torch.tensor(stats["scale"], dtype=torch.float32, device=built.device)
    return TargetUnits(scale, built.loss_name if built.loss_name in ("mse", "mae") else None)


def build_schedule(built: Built, optimizer):
    """The recipe's LR schedule over `optimizer`: warmup, then the main multiplier over the remaining epochs."""
    from dltrain.components.schedules import LRSchedule

    recipe = built.recipe
    steps_per_epoch = -(-len(built.loaders["train"]) // recipe.train.grad_accumulation)
    warmup = recipe.schedule.warmup_epochs
    main = SCHEDULES.build(recipe.schedule, max(1, recipe.train.epochs - int(warmup)))
    return LRSchedule(optimizer, main, warmup_epochs=warmup, steps_per_epoch=steps_per_epoch)


def build_fit_state(built: Built, learner, callbacks: list):
    """The FitState fit() starts from: planned epochs, the callbacks, when checkpoints are due."""
    from dltrain.train.events import FitState

    train = built.recipe.train
    return FitState(learner=learner, epochs=train.epochs, callbacks=callbacks,
                    checkpoint_every_steps=train.checkpoint_every_steps or 0,
                    checkpoint_interval=train.checkpoint_interval)
