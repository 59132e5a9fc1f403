"""`dltrain run`: train one recipe, or several recipes and/or seeds as one named batch."""

from __future__ import annotations

import sys
from pathlib import Path


def run(arguments: list[str], runs_dir: Path, seeds: int, batch: str | None, console, stack: int | None = None) -> int:
    """Returns the exit code: the run's, or the batch's worst run's. `stack`: at most this many
    seeds of one recipe train side by side (runner/stacked.py; default DEFAULT_STACK)."""
    from dltrain.runner.batch import batch_name, plan, run_batch, split_arguments
    from dltrain.runner.stacked import DEFAULT_STACK

    recipes, overrides = split_arguments(arguments)
    if len(recipes) > 1 or seeds > 1 or batch is not None:
        planned = plan(recipes, overrides, seeds)
        return run_batch(planned, runs_dir, batch_name(planned, batch, runs_dir), console, sys.argv,
                         stack or DEFAULT_STACK)
    from dltrain.features.progress import reporter_for
    from dltrain.builder.objects import load_checked
    from dltrain.runner.execute import execute
    from dltrain.views.result import print_result

    recipe = load_checked(recipes[0], overrides)
    result = execute(recipe, runs_dir, reporter=reporter_for(console, recipe), argv=sys.argv, settles=True)
    print_result(console, result)
    return result.exit_code
