"""`dltrain board`: TensorBoard on a runs root, bound to localhost only.

TensorBoard runs in this process (tensorboard.program, the same code as the `tensorboard`
command), so stopping `dltrain board` (Ctrl-C, SIGTERM) stops the server with it. Before it starts,
the HParams experiment of the runs it serves is written into the runs root (features.hparams):
runs started later appear in the dashboard with the keys known then; restart to add new keys.
"""

from __future__ import annotations

import time
from pathlib import Path

from dltrain.core.errors import UsageError
from dltrain.rundir.layout import BOARD_EXPERIMENT
from dltrain.rundir.reader import Run, all_runs, is_run_dir, load_run

HOST = "localhost"  # never 0.0.0.0: run records can hold paths and commands; share on purpose, not by default


def check_root(root: Path) -> None:
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"runs root `{root}` does not exist")
    if not (is_run_dir(root) or any(p.is_dir() and is_run_dir(p) for p in root.iterdir())):
        raise UsageError(f"`{root}` holds no runs (no directory with a run.json); "
                         "make some with `dltrain run RECIPE`")


def served_runs(root: Path) -> list[Run]:
    """The runs TensorBoard will show: the root itself when it is a run, else the runs under it."""
    return [load_run(root)] if is_run_dir(root) else all_runs(root)


def write_experiment(root: Path) -> None:
    """The HParams experiment of the served runs, as `BOARD_EXPERIMENT` in the root; a root that
    cannot be written to is served without it (the dashboard then builds its own, less ordered)."""
    from dltrain.features.hparams import experiment
    from dltrain.rundir.writer import write_event_file
    runs = served_runs(root)
    recorded = set().union(*(run.recorded_metrics() for run in runs))
    monitors = {run.summary["monitor"] for run in runs if run.summary.get("best_value") is not None}
    tests = {key for run in runs for key in run.summary.get("test", {})}
    summary = experiment([run.recipe for run in runs], recorded, monitors, tests)
    try:
        write_event_file(Path(root) / BOARD_EXPERIMENT, [summary])
    except OSError as err:
        print(f"note: HParams experiment not written ({err}); the dashboard shows its own", flush=True)


def launch(root: Path, port: int) -> str:
    """Start TensorBoard's server in background threads; returns its URL. Port 0: any free port."""
    from tensorboard import program
    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", str(root), "--host", HOST, "--port", str(port)])
    try:
        return board.launch()
    except program.TensorBoardServerException as err:
        raise UsageError(f"TensorBoard could not start on {HOST}:{port}: {err.msg}") from None


def serve_forever() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def board(runs_root: Path, port: int) -> None:
    """Serve until Ctrl-C; prints the URL first."""
    check_root(runs_root)
    write_experiment(runs_root)
    url = launch(runs_root, port)
    print(f"TensorBoard on {runs_root}: {url}  (HParams dashboard: {url}#hparams; Ctrl-C stops it)", flush=True)
    serve_forever()
