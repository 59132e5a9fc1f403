"""`dltrain list`: the runs under a runs root, newest first."""

from __future__ import annotations

import sys
from pathlib import Path


def list_runs(runs_dir: Path, limit: int | None, console) -> None:
    from dltrain.rundir.reader import all_runs
    from dltrain.views.runs import print_list

    runs = all_runs(runs_dir)
    if not runs:
        print(f"no runs under {runs_dir}", file=sys.stderr)
        return
    print_list(console, runs[:limit], runs_dir)
