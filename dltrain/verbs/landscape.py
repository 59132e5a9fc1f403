"""`dltrain landscape`: the loss around a run's weights along random filter-normalized directions."""

from __future__ import annotations

from pathlib import Path

from dltrain.core.errors import UsageError
from dltrain.rundir import layout


def landscape_run(run: Path, *, points: int, span: float, samples: int, seed: int, checkpoint: str,
                  out: Path | None = None) -> dict:
    """Loss landscape around a run's saved weights; writes landscape.json into the run and the
    picture to `out` (default: landscape.png in the run)."""
    import torch

    from dltrain.builder.objects import build
    from dltrain.diagnostics.landscape import landscape
    from dltrain.recipe.load import load_recipe
    from dltrain.rundir.writer import load_checkpoint, write_json
    from dltrain.verbs.diagnose import read_run_info
    from dltrain.views.diagnostic_figures import landscape_figure, run_subject, save_png

    path = run / layout.CHECKPOINTS / {"last": layout.LAST, "best": layout.BEST}[checkpoint]
    if not path.is_file():
        raise UsageError(f"{path} does not exist: the run saved no `{checkpoint}` checkpoint "
                         "(a run that diverged in its first epoch saves none)")
    recipe = load_recipe(run / layout.RECIPE)
    built = build(recipe)
    built.model.load_state_dict(load_checkpoint(path, map_location=built.device)["learner"]["model"])
    loader = built.loaders["train"]
    generator = torch.Generator().manual_seed(seed)
    take = torch.randperm(loader.n, generator=generator)[:min(samples, loader.n)].to(loader.x.device)
    result = landscape(built.model, built.loss_fn, loader.x[take], loader.y[take], points=points, span=span,
                       seed=seed)
    result["checkpoint"] = checkpoint
    result["picture"] = str(out or run / layout.LANDSCAPE_FIGURE)
    write_json(run / layout.LANDSCAPE, result)
    save_png(landscape_figure(result, run_subject(read_run_info(run), run.resolve().name)), Path(result["picture"]))
    return result


def landscape_verb(run_dir: Path, *, points: int, span: float, samples: int, seed: int, checkpoint: str,
                   console, out: Path | None = None) -> None:
    from dltrain.rundir.reader import load_run
    from dltrain.views.diagnosis import print_landscape

    if checkpoint not in ("last", "best"):
        raise UsageError(f"--checkpoint: expected `last` or `best`, got `{checkpoint}`")
    if out is not None and out.suffix.lower() != ".png":
        raise UsageError(f"--out writes a PNG image; give a file name ending in .png, not `{out}`")
    run = load_run(run_dir).path
    result = landscape_run(run, points=points, span=span, samples=samples, seed=seed, checkpoint=checkpoint, out=out)
    print_landscape(console, run, result)
