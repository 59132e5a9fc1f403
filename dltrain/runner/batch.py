"""`dltrain run RECIPE... [--seeds N]`: several recipes and/or seeds, run one after another as a
named batch. Every run's run.json records `batch: <name>`; `dltrain compare` shows the latest
batch by default.

Every recipe is loaded and validated before the first run starts, so a typo in the third recipe
does not surface after two runs' worth of waiting. The batch exits with the worst exit code of its
runs (core.status.EXIT_SEVERITY); an interrupt stops the batch where it is.
"""

from __future__ import annotations

import datetime as dt
import glob
import re
from pathlib import Path

from dltrain.core.errors import DataError, RecipeError, UsageError
from dltrain.core.status import STOPS_BATCH, Exit, worst
from dltrain.core.words import plural
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")


def split_arguments(arguments: list[str]) -> tuple[list[Path], list[str]]:
    """Arguments with `=` are KEY=VALUE overrides; the others are recipe paths or globs."""
    recipes: list[Path] = []
    overrides: list[str] = []
    for arg in arguments:
        if "=" in arg:
            overrides.append(arg)
        elif set("*?[") & set(arg):
            matched = sorted(glob.glob(arg))
            if not matched:
                raise UsageError(f"`{arg}` matches no recipe file")
            recipes += [Path(m) for m in matched]
        elif not Path(arg).exists() and Path(arg).suffix not in (".yaml", ".yml"):
            raise UsageError(f"`{arg}` is neither a recipe file nor an override: expected KEY=VALUE with a "
                             "dotted key, e.g. optimizer.lr=0.01")
        else:
            recipes.append(Path(arg))
    if not recipes:
        raise UsageError("no recipe given: expected `dltrain run RECIPE... [KEY=VALUE ...]`")
    return list(dict.fromkeys(recipes)), overrides


def plan(recipes: list[Path], overrides: list[str], seeds: int) -> list:
    """The recipes to run, in order: each recipe with seeds seed, seed+1, ..., seed+N-1.
    Every recipe's problems are reported together, before anything runs."""
    from dltrain.builder.objects import load_checked
    loaded, errors = [], []
    for path in recipes:
        try:
            loaded.append(load_checked(path, overrides))
        except RecipeError as err:
            errors.append(err.render())
    if errors:
        raise UsageError("\n".join(errors))
    return [r.model_copy(update={"seed": r.seed + i}) for r in loaded for i in range(seeds)]


def batch_name(recipes: list, given: str | None, runs_root: Path) -> str:
    """--batch NAME, or <recipe name>-<time> (`batch-<time>` when the recipes have several names)."""
    from dltrain.rundir.reader import all_runs, batches
    if given is not None and not NAME_PATTERN.match(given):
        raise UsageError(f"bad batch name `{given}`: use letters, digits, `_`, `.` and `-`")
    names = {r.name for r in recipes}
    name = given or f"{names.pop() if len(names) == 1 else 'batch'}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if Path(runs_root).is_dir() and name in batches(all_runs(Path(runs_root))):
        raise UsageError(f"a batch named `{name}` already exists under `{runs_root}`; choose another --batch")
    return name


def run_batch(recipes: list, runs_root: Path, name: str, console, argv: list[str]) -> int:
    """Run every planned recipe in order; print each result, then the batch compared. Returns the exit code."""
    from dltrain.core.signals import settle
    from dltrain.features.progress import reporter_for
    from dltrain.runner.execute import execute
    from dltrain.views.result import print_result

    codes: list[int] = []
    for i, recipe in enumerate(recipes, 1):
        console.rule(f"batch {name}: run {i}/{len(recipes)}: {recipe.name}, seed {recipe.seed}")
        try:
            result = execute(recipe, runs_root, reporter=reporter_for(console, recipe), argv=argv, batch=name)
        except KeyboardInterrupt:  # between runs (while building): nothing of this run was written
            codes.append(Exit.SIGINT)
            break
        except (RecipeError, DataError) as err:  # e.g. a loss that does not fit the task: skip this one
            message = err.render() if isinstance(err, RecipeError) else str(err)
            console.print(f"error: {message}", style="red", markup=False)
            codes.append(Exit.USAGE)
            continue
        print_result(console, result)
        codes.append(result.exit_code)
        if result.exit_code in STOPS_BATCH:
            break
    settle(worst(codes))  # every run's records are written: the batch's exit code stands
    if len(codes) < len(recipes):
        console.print(f"batch {name} stopped after {len(codes)} of {plural(len(recipes), 'run')}")
    print_batch(console, name, runs_root)
    return worst(codes)


def print_batch(console, name: str, runs_root: Path) -> None:
    from dltrain.rundir.reader import all_runs, batches
    from dltrain.views.compare import build, render_table
    from dltrain.views.result import print_command
    runs = batches(all_runs(Path(runs_root))).get(name, [])
    if runs:
        render_table(console, build(runs, title=f"batch {name}: {plural(len(runs), 'run')}"))
    print_command(console, "compare again:", f"dltrain compare {name}" +
                  ("" if Path(runs_root) == Path("runs") else f" --runs-dir {runs_root}"))
