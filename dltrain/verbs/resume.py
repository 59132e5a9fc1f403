"""`dltrain resume`: continue an interrupted, killed or failed run from its last good checkpoint, in
place; with `train.epochs=N`, extend any such run or a finished one to N epochs."""

from __future__ import annotations

import sys
from pathlib import Path


def resume(run: Path, overrides: list[str], runs_dir: Path, console) -> int:
    from dltrain.features.progress import reporter_for
    from dltrain.runner.execute import execute
    from dltrain.runner.distributed import refuse_under_torchrun
    from dltrain.runner.resume import extension_override, prepare_resume
    from dltrain.views.result import print_result

    refuse_under_torchrun("`dltrain resume`")

    point, recipe = prepare_resume(run, runs_dir, extension_override(overrides))
    console.print(f"resuming {point.run.path} from checkpoints/{point.source}: epoch {point.checkpoint['epoch']}, "
                  f"step {point.checkpoint['step']}", markup=False)
    if point.extended:
        console.print(f"extending it to {point.extended['epochs_to']} epochs (planned: "
                      f"{point.extended['epochs_from']})", markup=False)
    with point.lock:  # taken by prepare_resume; released here, once
        result = execute(recipe, point.run.path.parent, reporter=reporter_for(console, recipe), argv=sys.argv,
                         resume=point, settles=True)
    print_result(console, result)
    return result.exit_code
