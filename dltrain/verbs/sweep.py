"""`dltrain sweep`: search hyperparameters with Optuna; every trial is an ordinary run (engine: dltrain/sweep/)."""

from __future__ import annotations

import sys
from pathlib import Path


def sweep(recipe: Path, overrides: list[str], runs_dir: Path, plot: bool, console) -> int:
    from dltrain.runner.distributed import refuse_under_torchrun
    from dltrain.sweep.driver import run_sweep
    refuse_under_torchrun("`dltrain sweep`")
    return run_sweep(recipe, overrides, runs_dir, plot=plot, console=console, argv=sys.argv)
