"""`dltrain run`: train one recipe, or several recipes and/or seeds as one named batch."""

from __future__ import annotations

import sys
from pathlib import Path


def run(arguments: list[str], runs_dir: Path, seeds: int, batch: str | None, console, nproc: int = 1,
        stack: int | None = None) -> int:
    """Returns the exit code: the run's, or the batch's worst run's. `nproc` > 1: one data-parallel
    run on that many local processes (runner/launch.py); under torchrun, this process is one rank.
    `stack`: at most this many seeds of one recipe train side by side (runner/stacked.py; default
    DEFAULT_STACK)."""
    from dltrain.core.errors import UsageError
    from dltrain.runner.batch import batch_name, plan, run_batch, split_arguments
    from dltrain.runner.distributed import launched_by_torchrun
    from dltrain.runner.stacked import DEFAULT_STACK

    recipes, overrides = split_arguments(arguments)
    several = len(recipes) > 1 or seeds > 1 or batch is not None
    if several and (nproc > 1 or launched_by_torchrun()):
        raise UsageError("a data-parallel run (--nproc, or torchrun) trains one recipe: drop --seeds, --batch "
                         "and the extra recipes, or run them one after another")
    if nproc > 1 and launched_by_torchrun():
        raise UsageError("--nproc under torchrun: torchrun already started the processes (drop --nproc)")
    if nproc > 1:
        return _launch(recipes[0], overrides, runs_dir, nproc, console)
    if launched_by_torchrun():
        return _rank(recipes[0], overrides, runs_dir, console)
    if several:
        planned = plan(recipes, overrides, seeds)
        return run_batch(planned, runs_dir, batch_name(planned, batch, runs_dir), console, sys.argv,
                         stack or DEFAULT_STACK)
    from dltrain.builder.objects import load_checked
    from dltrain.features.progress import reporter_for
    from dltrain.runner.execute import execute
    from dltrain.views.result import print_result

    recipe = load_checked(recipes[0], overrides)
    result = execute(recipe, runs_dir, reporter=reporter_for(console, recipe), argv=sys.argv, settles=True)
    print_result(console, result)
    return result.exit_code


def _launch(recipe_path: str, overrides: list[str], runs_dir: Path, nproc: int, console) -> int:
    from dltrain.builder.objects import load_checked
    from dltrain.runner.launch import launch

    recipe = load_checked(recipe_path, overrides)
    code, _ = launch(recipe, [str(recipe_path), *overrides, "--runs-dir", str(runs_dir)], runs_dir, nproc)
    return code


def _rank(recipe_path: str, overrides: list[str], runs_dir: Path, console) -> int:
    """One rank of a data-parallel run under torchrun: rank 0 shows and records the run."""
    from dltrain.builder.objects import load_checked
    from dltrain.features.progress import reporter_for
    from dltrain.runner.distributed import join
    from dltrain.runner.execute import execute
    from dltrain.views.result import print_result

    recipe = load_checked(recipe_path, overrides)
    ranks = join(recipe.device)
    try:
        reporter = reporter_for(console, recipe) if ranks.is_writer else None
        result = execute(recipe, runs_dir, reporter=reporter, argv=ranks.command or sys.argv, settles=True,
                         ranks=ranks)
    finally:
        ranks.close()
    if ranks.is_writer:
        print_result(console, result)
    return result.exit_code
