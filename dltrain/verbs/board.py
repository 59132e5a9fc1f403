"""`dltrain board`: TensorBoard on a runs root, bound to localhost only.

TensorBoard runs in this process (tensorboard.program, the same code as the `tensorboard`
command), so stopping `dltrain board` (Ctrl-C, SIGTERM) stops the server with it.
"""

from __future__ import annotations

import time
from pathlib import Path

from dltrain.core.errors import UsageError
from dltrain.rundir.reader import is_run_dir

HOST = "localhost"  # never 0.0.0.0: run records can hold paths and commands; share on purpose, not by default


def check_root(root: Path) -> None:
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"runs root `{root}` does not exist")
    if not (is_run_dir(root) or any(p.is_dir() and is_run_dir(p) for p in root.iterdir())):
        raise UsageError(f"`{root}` holds no runs (no directory with a run.json); "
                         "make some with `dltrain run RECIPE`")


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
    url = launch(runs_root, port)
    print(f"TensorBoard on {runs_root}: {url}  (HParams dashboard: {url}#hparams; Ctrl-C stops it)", flush=True)
    serve_forever()
