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
                                                            "dataset or architecture; all when omitted")):
    """List the components a recipe can name, with their parameters and defaults."""
    from dltrain.report import print_catalog
    print_catalog(_console(), kind)


@app.command()
def diagnose(target: Path = typer.Argument(..., help="a run directory, or a recipe (initialization check only)"),
             overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP + "; recipes only"),
             plot: Optional[Path] = typer.Option(None, "--plot", help="write gradient norm and activation std "
                                                 "against depth to this PNG, one line per recorded epoch")):
    """Say in plain words whether training is healthy: vanishing or exploding gradients, dead or
    saturated units, where a run diverged. On a recipe it trains nothing: one forward/backward."""
    from dltrain.diagnostics.commands import diagnose_recipe, diagnose_run, resolve_run
    from dltrain.diagnostics.report import print_diagnosis

    if target.is_dir():
        if overrides:
            _fail("KEY=VALUE overrides apply to a recipe, not to a run directory")
        diagnosis = diagnose_run(resolve_run(target))
    elif target.is_file():
        diagnosis = diagnose_recipe(target, overrides or [])
    else:
        _fail(f"{target}: no such run directory or recipe file")
    if plot is not None:
        from dltrain.diagnostics.plots import depth_figure, save_png
        save_png(depth_figure(diagnosis.records), plot)
    print_diagnosis(_console(), diagnosis, plot)


@app.command()
def landscape(run_dir: Path = typer.Argument(..., metavar="RUN", help="a run directory"),
              points: int = typer.Option(21, "--points", min=3, max=101, help="points along each direction"),
              span: float = typer.Option(1.0, "--span", min=1e-6, help="distance to each side, in units of "
                                         "the (filter-normalized) weights"),
              samples: int = typer.Option(512, "--samples", min=1, help="training samples the loss is measured on"),
              seed: int = typer.Option(0, "--seed", help="seeds the directions and the sample"),
              checkpoint: str = typer.Option("last", "--checkpoint", help="last or best")):
    """Loss along 1-D and 2-D random filter-normalized directions around a run's weights (Li et al. 2018);
    writes landscape.png and landscape.json into the run directory."""
    from dltrain.diagnostics.commands import landscape_run, resolve_run
    from dltrain.diagnostics.report import print_landscape

    if checkpoint not in ("last", "best"):
        _fail(f"--checkpoint: expected `last` or `best`, got `{checkpoint}`")
    if not run_dir.is_dir():
        _fail(f"{run_dir}: no such run directory")
    run = resolve_run(run_dir)
    result = landscape_run(run, points=points, span=span, samples=samples, seed=seed, checkpoint=checkpoint)
    print_landscape(_console(), run, result)


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
