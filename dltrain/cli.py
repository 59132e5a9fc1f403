"""The `dltrain` command. Parses arguments, calls one function per verb, maps errors to exit codes:
0 done, 1 failed, 2 bad recipe or arguments, 3 run diverged, 130 interrupted (SIGINT), 143 (SIGTERM).
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


RUN_ARGS_HELP = ("more recipes (paths or globs) and/or dotted KEY=VALUE overrides for every recipe, values parsed "
                 "as YAML (optimizer.lr=0.01 model.hidden=[64,64]); an argument with `=` is an override")
RUNS_DIR = typer.Option(Path("runs"), "--runs-dir", help="the runs root: where run directories are")


@app.command()
def run(recipe: Path = typer.Argument(..., help=RECIPE_HELP),
        overrides: Optional[List[str]] = typer.Argument(None, help=RUN_ARGS_HELP),
        runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where run directories are created"),
        seeds: int = typer.Option(1, "--seeds", min=1, help="runs of each recipe, with seeds seed, seed+1, ..."),
        batch: Optional[str] = typer.Option(None, "--batch", help="name of the batch (default: <recipe name>-<time>)")):
    """Train a recipe; writes runs/<name>-<time>-<id>/. Several recipes or --seeds N: one batch (exit code: its worst run's)."""
    from dltrain.batch import split_arguments

    recipes, overrides = split_arguments([str(recipe), *(overrides or [])])
    if len(recipes) > 1 or seeds > 1 or batch is not None:
        _run_batch(recipes, overrides, seeds, batch, runs_dir)
    from dltrain.runner import execute
    from dltrain.progress import reporter_for
    from dltrain.report import print_result

    resolved = _load(recipes[0], overrides)
    console = _console()
    result = execute(resolved, runs_dir, reporter=reporter_for(console), argv=sys.argv)
    print_result(console, result)
    raise typer.Exit(result.exit_code)


def _run_batch(recipes: list[Path], overrides: list[str], seeds: int, batch: str | None, runs_dir: Path) -> None:
    from dltrain.batch import batch_name, plan, run_batch
    planned = plan(recipes, overrides, seeds)
    name = batch_name(planned, batch, runs_dir)
    raise typer.Exit(run_batch(planned, runs_dir, name, _console(), sys.argv))


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
                                                            "augmentation, dataset, architecture, method (sweep) or "
                                                            "pruner (sweep); all when omitted")):
    """List the components a recipe can name, with their parameters and defaults."""
    from dltrain.report import print_catalog
    print_catalog(_console(), kind)


@app.command(name="list")
def list_runs(runs_dir: Path = RUNS_DIR,
              limit: Optional[int] = typer.Option(None, "--limit", min=1, help="show only the newest N runs")):
    """The runs under the runs root, newest first: status, epochs, best monitored metric, test metrics, time."""
    from dltrain.runs import all_runs
    from dltrain.runview import print_list
    runs = all_runs(runs_dir)
    if not runs:
        print(f"no runs under {runs_dir}", file=sys.stderr)
        return
    print_list(_console(), runs[:limit], runs_dir)


@app.command()
def show(run: Optional[str] = typer.Argument(None, help="a run directory, or a run name (or unique prefix) "
                                                        "under the runs root; the newest run when omitted"),
         runs_dir: Path = RUNS_DIR):
    """One run: resolved recipe, summary, a table of its epochs, and how it ended."""
    from dltrain.runs import find_run
    from dltrain.runview import print_show
    print_show(_console(), find_run(run, runs_dir))


@app.command()
def compare(runs: Optional[List[str]] = typer.Argument(None, help="run directories, run names, batch names or "
                                                                  "globs; the latest batch when omitted"),
            runs_dir: Path = RUNS_DIR,
            metric: Optional[str] = typer.Option(None, "--metric", help="the metric compared (loss, accuracy, mae, "
                                                                        "rmse; default: the runs' monitored one)"),
            sort: Optional[str] = typer.Option(None, "--sort", help="best, final, test, epochs, time, params, or a "
                                                                    "differing recipe key (default: best)"),
            output_format: str = typer.Option("table", "--format", help="table, markdown, csv or json"),
            plot: Optional[Path] = typer.Option(None, "--plot", help="write learning curves to this PNG file")):
    """Runs side by side: differing recipe keys, then metrics; seed repeats as mean ± std, Welch's t-test vs the best."""
    from dltrain.compare import build, render_csv, render_json, render_markdown, render_table
    from dltrain.errors import UsageError, did_you_mean
    from dltrain.runs import latest_batch, select

    renderers = {"markdown": render_markdown, "csv": render_csv, "json": render_json}
    if output_format not in ("table", *renderers):
        raise UsageError(f"unknown format `{output_format}`{did_you_mean(output_format, ['table', *renderers])} "
                         "(choose from: table, markdown, csv, json)")
    if plot is not None and plot.suffix.lower() != ".png":
        raise UsageError(f"--plot writes a PNG image; give a file name ending in .png, not `{plot}`")
    if runs:
        chosen, title = select(runs, runs_dir), f"{' '.join(runs)}"
    else:
        name, chosen = latest_batch(runs_dir)
        title = f"batch {name}"
    if not chosen:
        raise UsageError("no runs to compare")
    comparison = build(chosen, title=f"{title}: {len(chosen)} run{'s' if len(chosen) != 1 else ''}",
                       metric=metric, sort=sort)
    if output_format == "table":
        render_table(_console(), comparison)
    else:
        sys.stdout.write(renderers[output_format](comparison))
    if plot is not None:
        from dltrain.plots import plot_curves
        plot_curves(comparison, plot)
        print(f"learning curves: {plot}", file=sys.stderr)


@app.command()
def board(runs_root: Path = typer.Argument(Path("runs"), help="the runs root (or one run directory)"),
          port: int = typer.Option(6006, "--port", min=0, max=65535, help="port on localhost; 0 picks a free one")):
    """Start TensorBoard on the runs root, bound to localhost; prints its URL. Ctrl-C stops it."""
    from dltrain.board import check_root, launch, serve_forever
    check_root(runs_root)
    url = launch(runs_root, port)
    print(f"TensorBoard on {runs_root}: {url}  (HParams dashboard: {url}#hparams; Ctrl-C stops it)", flush=True)
    serve_forever()


@app.command()
def resume(run: Path = typer.Argument(..., help="run directory (or its name under --runs-dir)"),
           runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where to look for a bare run name")):
    """Continue an interrupted, killed or failed run from its last good checkpoint, in place."""
    from dltrain.progress import reporter_for
    from dltrain.report import print_result
    from dltrain.resume import prepare_resume
    from dltrain.runner import execute

    point, recipe = prepare_resume(run, runs_dir)
    console = _console()
    console.print(f"resuming {point.run.path} from checkpoints/{point.source}: epoch {point.checkpoint['epoch']}, "
                  f"step {point.checkpoint['step']}", markup=False)
    try:
        result = execute(recipe, point.run.path.parent, reporter=reporter_for(console), argv=sys.argv, resume=point)
    finally:
        point.lock.release()
    print_result(console, result)
    raise typer.Exit(result.exit_code)


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


def quiet_thread_waits() -> None:
    """Let torch's OpenMP threads sleep, not spin, between parallel regions, unless the user chose.

    A spinning thread holds its core: when another process (or TensorBoard's writer thread) also
    wants one of a few cores, small models ran 5-10x slower (quickstart: 13 s instead of 2 s on a
    2-core machine with one other busy process). libgomp reads this when torch is first imported,
    so it is set before any verb imports torch; child processes (sweep workers) inherit it."""
    import os
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> None:
    """Entry point; `argv` lets tests call the real CLI in-process. Always ends in SystemExit."""
    quiet_thread_waits()
    from dltrain.errors import DataError, RecipeError, UsageError

    try:
        app(args=argv, prog_name="dltrain")
    except RecipeError as err:
        print(f"error: {err.render()}", file=sys.stderr)
        sys.exit(2)
    except (UsageError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # outside training (loading, building): nothing to save
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as err:  # the machine, not the recipe: a full disk while writing the final records, say
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
