"""`dltrain show`: one run's recipe, summary, epochs and how it ended."""

from __future__ import annotations

from pathlib import Path


def show(selector: str | None, runs_dir: Path, console) -> None:
    from dltrain.rundir.reader import find_run
    from dltrain.views.runs import print_show
    print_show(console, find_run(selector, runs_dir))
