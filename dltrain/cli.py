"""The `dltrain` command. Parses arguments, calls one function per verb, maps errors to exit codes
(core.status.Exit): 0 done, 1 failed, 2 bad recipe or arguments, 3 run diverged, 130 interrupted
(SIGINT), 143 (SIGTERM).
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


RUN_ARGS_HELP = ("more recipes (paths or globs) and/or dotted KEY=VALUE overrides for every recipe, values parsed "
                 "as YAML (optimizer.lr=0.01 model.hidden=[64,64]); an argument with `=` is an override")
RUNS_DIR = typer.Option(Path("runs"), "--runs-dir", help="the runs root: where run directories are")


@app.command()
def run(recipe: Path = typer.Argument(..., help=RECIPE_HELP),
        overrides: Optional[List[str]] = typer.Argument(None, help=RUN_ARGS_HELP),
        runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where run directories are created"),
        seeds: int = typer.Option(1, "--seeds", min=1, help="runs of each recipe, with seeds seed, seed+1, ..."),
        batch: Optional[str] = typer.Option(None, "--batch", help="name of the batch (default: <recipe name>-<time>)"),
        nproc: int = typer.Option(1, "--nproc", min=1, help="data-parallel processes on this machine (torch.distributed; "
                                                            "data.batch_size is the global batch)"),
        stack: Optional[int] = typer.Option(None, "--stack", min=1, help="seeds of one mlp recipe trained side by "
                                            "side in one process, at most this many at once (default 16; 1: one after another)")):
    """Train a recipe; writes runs/<name>-<time>-<id>/. Several recipes or --seeds N: one batch (exit code: its worst run's)."""
    from dltrain.verbs.run import run as run_verb
    raise typer.Exit(run_verb([str(recipe), *(overrides or [])], runs_dir, seeds, batch, _console(), nproc=nproc,
                              stack=stack))


@app.command()
def validate(recipe: Path = typer.Argument(..., help=RECIPE_HELP),
             overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP)):
    """Check a recipe; print it resolved (defaults filled in) and a model summary. Trains nothing."""
    from dltrain.verbs.validate import validate as validate_verb
    validate_verb(recipe, overrides or [], _console())


@app.command()
def catalog(kind: Optional[str] = typer.Argument(None, help="activation, initializer, optimizer, schedule, loss, "
                                                            "augmentation, dataset, architecture, method (sweep) or "
                                                            "pruner (sweep); all when omitted")):
    """List the components a recipe can name, with their parameters and defaults."""
    from dltrain.verbs.catalog import catalog as catalog_verb
    catalog_verb(kind, _console())


@app.command()
def schema(out: Optional[Path] = typer.Option(None, "--out", help="write it to this file instead of printing it")):
    """Print the recipe's JSON Schema (draft 2020-12): completion and checks in editors (docs/recipes.md)."""
    from dltrain.verbs.schema import schema as schema_verb
    schema_verb(out)


@app.command(name="list")
def list_runs(runs_dir: Path = RUNS_DIR,
              limit: Optional[int] = typer.Option(None, "--limit", min=1, help="show only the newest N runs")):
    """The runs under the runs root, newest first: status, epochs, best monitored metric, test metrics, time."""
    from dltrain.verbs.list_runs import list_runs as list_verb
    list_verb(runs_dir, limit, _console())


@app.command()
def show(run: Optional[str] = typer.Argument(None, help="a run directory, or a run name (or unique prefix) "
                                                        "under the runs root; the newest run when omitted"),
         runs_dir: Path = RUNS_DIR):
    """One run: resolved recipe, summary, a table of its epochs, and how it ended."""
    from dltrain.verbs.show import show as show_verb
    show_verb(run, runs_dir, _console())


@app.command()
def compare(runs: Optional[List[str]] = typer.Argument(None, help="run directories, run names, batch names or "
                                                                  "globs; the latest batch when omitted"),
            runs_dir: Path = RUNS_DIR,
            metric: Optional[str] = typer.Option(None, "--metric", help="the metric compared (loss, accuracy, mae, "
                                                                        "rmse; default: the runs' monitored one)"),
            sort: Optional[str] = typer.Option(None, "--sort", help="best, final, test, epochs, time, params, or a "
                                                                    "differing recipe key (default: best)"),
            output_format: str = typer.Option("table", "--format", help="table, markdown, csv or json"),
            plot: Optional[Path] = typer.Option(None, "--plot", help="write learning curves to this PNG file"),
            log_y: str = typer.Option("auto", "--log-y", help="--plot's loss axes: auto (log once they span a "
                                                               "decade), on or off")):
    """Runs side by side: differing recipe keys, then metrics; seed repeats as mean ± std, Welch's t-test vs the best."""
    from dltrain.verbs.compare import compare as compare_verb
    compare_verb(runs or [], runs_dir, metric=metric, sort=sort, output_format=output_format, plot=plot,
                 log_y=log_y, console=_console())


@app.command()
def board(runs_root: Path = typer.Argument(Path("runs"), help="the runs root (or one run directory)"),
          port: int = typer.Option(6006, "--port", min=0, max=65535, help="port on localhost; 0 picks a free one")):
    """Start TensorBoard on the runs root, bound to localhost; prints its URL. Ctrl-C stops it."""
    from dltrain.verbs.board import board as board_verb
    board_verb(runs_root, port)


@app.command()
def resume(run: Path = typer.Argument(..., help="run directory (or its name under --runs-dir)"),
           overrides: Optional[List[str]] = typer.Argument(None, help="train.epochs=N: extend the run (a "
                                                           "completed or early-stopped one too) to N epochs; "
                                                           "the only override resume takes"),
           runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where to look for a bare run name")):
    """Continue an interrupted, killed or failed run from its last good checkpoint, in place; train.epochs=N
    extends a run, a finished one too, to N epochs."""
    from dltrain.verbs.resume import resume as resume_verb
    raise typer.Exit(resume_verb(run, overrides or [], runs_dir, _console()))


@app.command()
def sweep(recipe: Path = typer.Argument(..., help="recipe YAML file with a `sweep:` section"),
          overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP + "; sweep keys too "
                                                          "(sweep.method=random sweep.trials=8)"),
          runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where trial run directories are created"),
          plot: bool = typer.Option(False, "--plot", help="also write optimization-history and "
                                                          "parallel-coordinates PNGs")):
    """Search hyperparameters with Optuna: every trial is an ordinary run; re-running continues the sweep."""
    from dltrain.verbs.sweep import sweep as sweep_verb
    raise typer.Exit(sweep_verb(recipe, overrides or [], runs_dir, plot, _console()))


@app.command()
def diagnose(target: Path = typer.Argument(..., help="a run directory, or a recipe (initialization check only)"),
             overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP + "; recipes only"),
             plot: Optional[Path] = typer.Option(None, "--plot", help="write gradient norm and activation std "
                                                 "against depth to this PNG, one line per recorded epoch")):
    """Say in plain words whether training is healthy: vanishing or exploding gradients, dead or
    saturated units, where a run diverged. On a recipe it trains nothing: one forward/backward."""
    from dltrain.verbs.diagnose import diagnose as diagnose_verb
    diagnose_verb(target, overrides or [], plot, _console())


@app.command()
def landscape(run_dir: Path = typer.Argument(..., metavar="RUN", help="a run directory"),
              points: int = typer.Option(21, "--points", min=3, max=101, help="points along each direction"),
              span: float = typer.Option(1.0, "--span", min=1e-6, help="distance to each side, in units of "
                                         "the (filter-normalized) weights"),
              samples: int = typer.Option(512, "--samples", min=1, help="training samples the loss is measured on"),
              seed: int = typer.Option(0, "--seed", help="seeds the directions and the sample"),
              checkpoint: str = typer.Option("last", "--checkpoint", help="last or best"),
              out: Optional[Path] = typer.Option(None, "--out", help="write the picture to this PNG file "
                                                 "(default: landscape.png in the run directory)")):
    """Loss along 1-D and 2-D random filter-normalized directions around a run's weights (Li et al. 2018);
    writes landscape.json into the run directory and the picture to --out (default: RUN/landscape.png)."""
    from dltrain.verbs.landscape import landscape_verb
    landscape_verb(run_dir, points=points, span=span, samples=samples, seed=seed, checkpoint=checkpoint,
                   console=_console(), out=out)


@app.command()
def study(target: Optional[str] = typer.Argument(None, metavar="NAME|FILE", help="a shipped study's name "
                                                 "(see --list) or a study file"),
          overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP + "; applied to every arm"),
          quick: bool = typer.Option(False, "--quick", help="the reduced form: fewer seeds and epochs (stated in "
                                     "the report)"),
          seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="seeds per arm (default: the study's)"),
          list_only: bool = typer.Option(False, "--list", help="list the shipped studies, one line each"),
          runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where run directories are created"),
          reports_dir: Path = typer.Option(Path("studies-out"), "--reports-dir", help="where the study "
                                           "directory (report.md, PNGs) is written")):
    """Train a study's arms x seeds as one batch, test its claims and write report.md with a verdict."""
    from dltrain.verbs.study import study as study_verb
    raise typer.Exit(study_verb(target, overrides or [], quick=quick, seeds=seeds, list_only=list_only,
                                runs_dir=runs_dir, reports_dir=reports_dir, console=_console()))


def quiet_thread_waits() -> None:
    """Let torch's OpenMP threads sleep, not spin, between parallel regions, unless the user chose.

    A spinning thread holds its core: when another process (or TensorBoard's writer thread) also
    wants one of a few cores, small models ran 5-10x slower (quickstart: 13 s instead of 2 s on a
    2-core machine with one other busy process). libgomp reads this when torch is first imported,
    so it is set before any verb imports torch; child processes (sweep workers) inherit it."""
    import os
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> None:
    """Entry point; `argv` lets tests call the real CLI in-process, and always ends in SystemExit.
    As the process's own entry (argv None) it ends the process at once instead (exit_now)."""
    try:
        run_command(argv)
    except SystemExit as done:
        if argv is not None:
            raise
        exit_now(done.code)


def exit_now(code) -> None:
    """End the process without the interpreter's teardown, which with torch loaded takes 1.5-4 s
    after the last line (freeing every module's objects, unloading its libraries) and does
    nothing dltrain needs: by now every file is written, fsynced, renamed and closed, and the
    writer threads are joined (a thread still at work is waited for, to be safe). atexit
    handlers, logging and the standard streams are flushed first, as a normal exit would."""
    import atexit
    import logging
    import os
    import threading

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    logging.shutdown()
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what SystemExit("message") prints
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code or 0)


def run_command(argv: list[str] | None) -> None:
    """The command: always ends in SystemExit."""
    quiet_thread_waits()
    from dltrain.core import signals
    from dltrain.core.errors import DataError, RecipeError, UsageError
    from dltrain.core.status import Exit

    handlers = signals.current_handlers()
    caller_argv = sys.argv
    if argv is not None:  # in-process (tests): run.json's command is this call's, not the caller's
        sys.argv = ["dltrain", *argv]
    try:
        app(args=argv, prog_name="dltrain")
    except RecipeError as err:
        print(f"error: {err.render()}", file=sys.stderr)
        sys.exit(Exit.USAGE)
    except (UsageError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(Exit.USAGE)
    except KeyboardInterrupt:  # outside training (loading, building): nothing to save
        print("interrupted", file=sys.stderr)
        sys.exit(Exit.SIGINT)
    except OSError as err:  # the machine, not the recipe: a full disk while writing the final records, say
        print(f"error: {err}", file=sys.stderr)
        sys.exit(Exit.FAILED)
    finally:
        if argv is not None:  # called in-process (tests): give the caller its signal handlers and argv back
            signals.unsettle(handlers)
            sys.argv = caller_argv


if __name__ == "__main__":
    main()
