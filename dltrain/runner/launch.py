"""`dltrain run RECIPE --nproc N`: N local workers started by torch.distributed.run, torchrun's own
launcher (its elastic agent starts, watches and stops the workers; nothing here spawns a process).

The launcher checks the recipe first (a bad one exits 2 before any worker starts), makes the run
directory, empty, and tells rank 0 to write into it (distributed.RUN_DIR_ENV). Once the workers
are gone it reads the run's record for the exit code. The elastic agent stops every worker when
one fails; when that first failure was not rank 0's own recorded end (a rank died, or rank 0 was
killed before it could write), the launcher records the run as failed, naming the rank. A SIGINT
or SIGTERM to the launcher reaches every worker through the agent: they checkpoint at the same
step and stop as `interrupted` (exit 130 or 143; `dltrain resume` continues on any number of
processes).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
from pathlib import Path

from dltrain.core.errors import Problem, RecipeError
from dltrain.core.status import Exit, RunStatus
from dltrain.rundir.writer import RunDir, new_run_dir
from dltrain.runner.distributed import COMMAND_ENV, RUN_DIR_ENV


def launch(recipe, worker_arguments: list[str], runs_root: Path, nproc: int) -> tuple[int, Path]:
    """Run `dltrain run` + worker_arguments on `nproc` local workers; returns (exit code, run directory).
    `recipe` is the loaded recipe (its data checks are made here, before anything starts)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    check_before_launch(recipe, nproc)
    arguments = parse_args(["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0",
                            "--module", "dltrain", "run", *worker_arguments])
    run_dir = RunDir(new_run_dir(Path(runs_root), recipe.name))
    os.environ[RUN_DIR_ENV] = str(run_dir.path)
    os.environ[COMMAND_ENV] = json.dumps(sys.argv)  # run.json records the command the user typed
    try:
        run(arguments)
    except SignalException as stopped:  # the agent passed it on to every worker, and waited for them
        _remove_if_empty(run_dir)  # stopped before rank 0 began the run
        return 128 + int(stopped.sigval), run_dir.path
    except ChildFailedError as failed:
        return _after_failure(run_dir, failed), run_dir.path
    finally:
        os.environ.pop(RUN_DIR_ENV, None)
        os.environ.pop(COMMAND_ENV, None)
    return _recorded_exit(run_dir), run_dir.path


def check_before_launch(recipe, nproc: int) -> None:
    """What the workers would reject, found once, here: the checks that need the data, and a
    global batch the processes cannot share."""
    from dltrain.builder.objects import check_with_data

    problems = list(check_with_data(recipe).problems)
    if recipe.data.batch_size < nproc:
        problems.append(Problem("data.batch_size", f"{recipe.data.batch_size} is the global batch, shared by "
                                f"{nproc} processes: expected at least {nproc}"))
    if problems:
        raise RecipeError(problems)


def _recorded_exit(run_dir: RunDir) -> int:
    status = RunStatus.read(_reread(run_dir).get("status"))
    return status.exit_code


def _after_failure(run_dir: RunDir, failed) -> int:
    """The exit code after a worker failed; records the failure when rank 0 could not."""
    info = _reread(run_dir)
    if not info:  # rank 0 wrote nothing: it stopped before the run began (its error is on stderr)
        _remove_if_empty(run_dir)
        first = failed.get_first_failure()[1]
        return first.exitcode if first.exitcode > 0 else Exit.FAILED
    status = RunStatus.read(info.get("status"))
    rank, failure = failed.get_first_failure()
    if status is RunStatus.INTERRUPTED:  # the ranks agreed on a signal sent to a worker: its code (130 or 143)
        own = failed.failures.get(0)
        return own.exitcode if own is not None and own.exitcode > 0 else Exit.SIGTERM
    if status is RunStatus.RUNNING or (status is RunStatus.FAILED and rank != 0):
        how = (f"killed by {failure.signal_name()}" if failure.exitcode < 0
               else f"exit code {failure.exitcode}")
        reason = f"rank {rank} of {_world(info)} failed first ({how})"
        if status is RunStatus.FAILED and info.get("stop_reason"):
            reason += f"; rank 0: {info['stop_reason']}"
        run_dir.info = info
        run_dir.update_run_info(status=RunStatus.FAILED, stop_reason=reason + f"; continue it with: dltrain resume "
                                f"{run_dir.path}", ended=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                                failed_rank=rank)
        print(f"run failed: {reason}", file=sys.stderr)
        return Exit.FAILED
    return status.exit_code


def _remove_if_empty(run_dir: RunDir) -> None:
    with contextlib.suppress(OSError):  # not empty: rank 0 began the run, whose record stays
        run_dir.path.rmdir()


def _world(info: dict) -> int:
    return (info.get("distributed") or {}).get("world_size", "?")


def _reread(run_dir: RunDir) -> dict:
    """run.json as rank 0 left it ({} when it wrote none)."""
    try:
        return json.loads(run_dir.info_file.read_text())
    except (OSError, ValueError):
        return {}
