"""The `dltrain` command. Parses arguments, calls one function per verb, maps errors to exit codes:
0 done, 1 failed, 2 bad recipe or arguments, 3 run diverged, 130 interrupted (SIGINT).
torch is imported only inside the verbs that need it, so `dltrain --help` answers at once."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Run deep-learning experiments from YAML recipes, and see why training works or fails.")

RECIPE_HELP = "recipe YAML file"
OVERRIDES_HELP = "dotted KEY=VALUE overrides, values parsed as YAML (optimizer.lr=0.01 model.hidden=[64,64])"


def _console(stderr: bool = False):
    from rich.console import Console
    return Console(stderr=stderr, highlight=False)


def _fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def _load(recipe: Path, overrides: list[str] | None):
    from dltrain.recipe import load_recipe
    return load_recipe(recipe, overrides or [])


@app.command()
def run(recipe: Path = typer.Argument(..., help=RECIPE_HELP),
        overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP),
        runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where run directories are created")):
    """Train a recipe; writes runs/<name>-<time>-<id>/."""
    from dltrain.runner import execute
    from dltrain.progress import reporter_for
    from dltrain.report import print_result

    resolved = _load(recipe, overrides)
    console = _console()
    result = execute(resolved, runs_dir, reporter=reporter_for(console), argv=sys.argv)
    print_result(console, result)
    raise typer.Exit(result.exit_code)


@app.command()
def validate(recipe: Path = typer.Argument(..., help=RECIPE_HELP),
             overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP)):
    """Check a recipe; print it resolved (defaults filled in) and a model summary. Trains nothing."""
    from dltrain.report import print_model_summary
    from dltrain.runner import build

    resolved = _load(recipe, overrides)
    built = build(resolved)
    console = _console()
    console.print(f"# {recipe}: valid. Resolved recipe:", style="bold green")
    console.print(resolved.to_yaml(), markup=False, end="")
    print_model_summary(console, built)


@app.command()
def catalog(kind: Optional[str] = typer.Argument(None, help="activation, initializer, optimizer, schedule, loss, "
                                                            "dataset, architecture, method (sweep) or pruner (sweep); "
                                                            "all when omitted")):
    """List the components a recipe can name, with their parameters and defaults."""
    from dltrain.report import print_catalog
    print_catalog(_console(), kind)


@app.command()
def sweep(recipe: Path = typer.Argument(..., help="recipe YAML file with a `sweep:` section"),
          overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP + "; sweep keys too "
                                                          "(sweep.method=random sweep.trials=8)"),
          runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where trial run directories are created"),
          plot: bool = typer.Option(False, "--plot", help="also write optimization-history and "
                                                          "parallel-coordinates PNGs")):
    """Search hyperparameters with Optuna: every trial is an ordinary run; re-running continues the sweep."""
    from dltrain.sweep.driver import run_sweep

    code = run_sweep(recipe, overrides or [], runs_dir, plot=plot, console=_console(), argv=sys.argv)
    raise typer.Exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point; `argv` lets tests call the real CLI in-process. Always ends in SystemExit."""
    from dltrain.errors import DataError, RecipeError, UsageError

    try:
        app(args=argv, prog_name="dltrain")
    except RecipeError as err:
        print(f"error: {err.render()}", file=sys.stderr)
        sys.exit(2)
    except (UsageError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
