"""Several runs of one architecture trained side by side in one process (train/stacked.py), each
an ordinary run: its own run directory, recipe, run.json, metrics.csv, checkpoints, summary.

Recipes are grouped when they differ in the seed only; a group holds at most `limit` members
(`dltrain run --stack K`). A recipe the stack does not cover trains alone; `why_not_stacked` says why.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

DEFAULT_STACK = 16  # members per group: small models gain little beyond it on a few CPU cores


def why_not_stacked(recipe) -> str | None:
    """Why this recipe's runs train one after another (None when they can be stacked)."""
    reasons = [
        (recipe.model.arch != "mlp", f"the `{recipe.model.arch}` architecture is not stacked (only mlp is)"),
        (recipe.log.diagnostics, "log.diagnostics is on: its step probes hook a lone model's forward "
                                 "(log.diagnostics=false stacks them)"),
        (recipe.train.grad_accumulation > 1, "train.grad_accumulation > 1 is not stacked"),
        (recipe.train.precision != "fp32", f"train.precision {recipe.train.precision} is not stacked"),
        (recipe.train.compile, "train.compile is not stacked"),
        (recipe.clip is not None, "clip (a per-member gradient norm) is not stacked"),
        (bool(recipe.regularization.l1 or recipe.regularization.l2), "regularization.l1/l2 is not stacked"),
        (bool(recipe.data.augment), "data.augment is not stacked"),
        (recipe.schedule.name == "plateau", "schedule plateau (a per-member lr) is not stacked"),
    ]
    return next((why for applies, why in reasons if applies), None)


def signature(recipe) -> str:
    """What members of one group share: the whole recipe but its seed."""
    return recipe.model_copy(update={"seed": 0}).to_yaml()


def groups(recipes: list, limit: int) -> list[tuple[list, str | None]]:
    """Consecutive recipes that differ in the seed only, in groups of at most `limit`; each group
    with the reason it trains one after another (None: stacked). A group of one is not stacked."""
    out: list[tuple[list, str | None]] = []
    for recipe in recipes:
        reason = why_not_stacked(recipe) if limit > 1 else "--stack 1"
        last = out[-1] if out else None
        if (last is not None and reason is None and last[1] is None and len(last[0]) < limit
                and signature(last[0][0]) == signature(recipe)):
            last[0].append(recipe)
        else:
            out.append(([recipe], reason))
    return out


class NotStacked(Exception):
    """The built members cannot share a stack (raised before anything is written)."""


def execute_group(recipes: list, runs_root: Path, *, argv: list[str], batch: str | None = None) -> list:
    """Build every member, then train them stacked; returns each member's RunResult, in order.
    Raises NotStacked (nothing written) when the built models or data do not fit one stack."""
    from dltrain.builder.objects import build
    from dltrain.builder.training import build_learner, determinism

    with determinism(recipes[0]):
        members = []
        for recipe in recipes:
            built = build(recipe)
            learner = build_learner(built)
            members.append((built, learner, _rng_like_global(built.device)))
        _check_fit([b for b, _, _ in members])
        with contextlib.ExitStack() as locks:
            return _train_group(members, Path(runs_root), argv, batch, locks)


def _rng_like_global(device):
    """A generator where the device's global one stands now: where the lone run's dropout would start."""
    import torch
    generator = torch.Generator(device=device)
    generator.set_state(torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state())
    return generator


def _check_fit(builts: list) -> None:
    from dltrain.models.stacked import why_not_stackable
    for built in builts:
        why = why_not_stackable(built.model) or ("model.from/freeze (transfer) is not stacked" if built.transfer else None)
        if why:
            raise NotStacked(why)
    sizes = {(b.loaders["train"].n, b.loaders["val"].n if b.loaders["val"] is not None else 0) for b in builts}
    if len(sizes) > 1:
        raise NotStacked("the members' data splits differ in size")


def _train_group(members: list, runs_root: Path, argv, batch, locks) -> list:
    from dltrain.builder.features import build_callbacks
    from dltrain.builder.training import build_fit_state, build_schedule
    from dltrain.components import OPTIMIZERS
    from dltrain.core.signals import stop_signals
    from dltrain.models.stacked import StackedMLP
    from dltrain.rundir.lock import RunLock
    from dltrain.rundir.writer import RunDir, new_run_dir, write_text
    from dltrain.runner.execute import record_end, record_start
    from dltrain.train.stacked import Member, MemberLearner, StackedGroup

    first = members[0][0]
    stack = StackedMLP([b.model for b, _, _ in members], [g for _, _, g in members]).to(first.device)
    optimizer = OPTIMIZERS.build(first.recipe.optimizer, stack.stacked_parameters())
    group = StackedGroup(stack, optimizer, build_schedule(first, optimizer), first.loss_fn, task=first.data.task,
                         log_every=first.recipe.log.every_steps, members=[], modules=[b.model for b, _, _ in members])
    started = time.time()
    runs = []
    for k, (built, learner, generator) in enumerate(members):
        run = RunDir(new_run_dir(runs_root, built.recipe.name))
        locks.enter_context(RunLock.acquire(run.path))
        record_start(run, built, argv, batch, {"stacked": {"members": len(members), "index": k}})
        member_learner = MemberLearner(learner, k, group)
        state = build_fit_state(built, member_learner, build_callbacks(built, run))
        group.members.append(Member(state, built.loaders["train"], built.loaders["val"], generator))
        runs.append(run)
    with stop_signals() as request:
        for m in group.members:
            m.state.stop_request = request
        group.fit()
        request.finishing = True  # from here on a signal is only noted: the records must be written
        for run, m in zip(runs, group.members):
            if m.outcome[2] is not None:  # a failed member's traceback, as a lone run keeps it
                with contextlib.suppress(OSError):
                    write_text(run.error_file, m.outcome[2])
        return [record_end(run, m.state, built, learner, m.outcome, started, 0.0, request, settles=False)
                for run, m, (built, learner, _) in zip(runs, group.members, members)]
