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


def run_batch(recipes: list, runs_root: Path, name: str, console, argv: list[str], stack: int = 1) -> int:
    """Run every planned recipe in order; print each result, then the batch compared. Returns the exit code.
    Recipes that differ in the seed only train side by side, up to `stack` at once (runner/stacked.py)."""
    from dltrain.core.signals import settle
    from dltrain.runner.stacked import groups

    codes: list[int] = []
    said: set[str] = set()
    for group, reason in groups(recipes, stack):
        if reason is None:
            results = _stacked(group, runs_root, name, console, argv, len(recipes), len(codes))
            codes += [result.exit_code for result in results or []]
        elif stack > 1 and reason not in said and sum(r.name == group[0].name for r in recipes) > 1:
            said.add(reason)  # one line per reason: why these seeds do not train side by side
            console.print(f"{group[0].name}: trained one after another: {reason}", markup=False)
        if reason is not None or results is None:
            for recipe in group:
                codes.append(_run_one(recipe, runs_root, name, console, argv, len(codes) + 1, len(recipes)))
                if codes[-1] in STOPS_BATCH:
                    break
        if any(code in STOPS_BATCH for code in codes):
            break
    settle(worst(codes))  # every run's records are written: the batch's exit code stands
    if len(codes) < len(recipes):
        console.print(f"batch {name} stopped after {len(codes)} of {plural(len(recipes), 'run')}")
    print_batch(console, name, runs_root)
    return worst(codes)


def _stacked(group: list, runs_root: Path, name: str, console, argv, total: int, done: int):
    """Train a group side by side; its results, or None when the built members do not fit one stack
    (said in one line; nothing was written)."""
    from dltrain.runner.stacked import NotStacked, execute_group
    from dltrain.views.result import print_result
    seeds = f"seeds {group[0].seed}..{group[-1].seed}"
    console.rule(f"batch {name}: runs {done + 1}-{done + len(group)}/{total}: {group[0].name}, {seeds}, "
                 f"{len(group)} side by side")
    try:
        results = execute_group(group, runs_root, argv=argv, batch=name)
    except NotStacked as why:
        console.print(f"{group[0].name}: trained one after another: {why}", markup=False)
        return None
    except (RecipeError, DataError):  # reported run by run, one after another
        return None
    for result in results:
        print_result(console, result)
    return results


def _run_one(recipe, runs_root: Path, name: str, console, argv, i: int, total: int) -> int:
    from dltrain.features.progress import reporter_for
    from dltrain.runner.execute import execute
    from dltrain.views.result import print_result
    console.rule(f"batch {name}: run {i}/{total}: {recipe.name}, seed {recipe.seed}")
    try:
        result = execute(recipe, runs_root, reporter=reporter_for(console, recipe), argv=argv, batch=name)
    except KeyboardInterrupt:  # between runs (while building): nothing of this run was written
        return Exit.SIGINT
    except (RecipeError, DataError) as err:  # e.g. a loss that does not fit the task: skip this one
        message = err.render() if isinstance(err, RecipeError) else str(err)
        console.print(f"error: {message}", style="red", markup=False)
        return Exit.USAGE
    print_result(console, result)
    return result.exit_code


def print_batch(console, name: str, runs_root: Path) -> None:
    from dltrain.rundir.reader import all_runs, batches
    from dltrain.views.compare import build, render_table
    from dltrain.views.result import print_command
    runs = batches(all_runs(Path(runs_root))).get(name, [])
    if runs:
        render_table(console, build(runs, title=f"batch {name}: {plural(len(runs), 'run')}"))
    print_command(console, "compare again:", f"dltrain compare {name}" +
                  ("" if Path(runs_root) == Path("runs") else f" --runs-dir {runs_root}"))
