"""What `dltrain diagnose` and `dltrain landscape` do, apart from parsing arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dltrain.errors import UsageError

PROBE_BATCH = (64, 1024)  # the fixed probe batch: the training batch size, kept within these bounds


def fixed_batch(loader):
    """The first samples of the training split in stored order (the split itself is a seeded shuffle):
    the same batch at initialization and at every probe epoch, so depth profiles are comparable."""
    size = min(max(loader.batch_size, PROBE_BATCH[0]), PROBE_BATCH[1], loader.n)
    return loader.x[:size], loader.y[:size]


@dataclass
class Diagnosis:
    source: str
    sections: list[tuple[str, list]] = field(default_factory=list)  # (heading, findings)
    forensics: dict | None = None
    records: list[dict] = field(default_factory=list)  # the probe records, for --plot


def diagnose_recipe(path: Path, overrides: list[str]) -> Diagnosis:
    """The initialization check alone: build the recipe, one forward/backward on a fixed batch."""
    from dltrain.diagnostics.probes import Probe, probe_pass
    from dltrain.diagnostics.verdicts import judge
    from dltrain.recipe import load_recipe
    from dltrain.runner import build

    recipe = load_recipe(path, overrides)
    built = build(recipe)
    x, y = fixed_batch(built.loaders["train"])
    record = probe_pass(built.model, built.loss_fn, x, y, Probe(built.model)).to_host()
    heading = (f"initialization check of {path} ({len(record['layers'])} layers, one forward/backward "
               f"on {len(x)} training samples, loss {float(record['loss']):.4g})")
    return Diagnosis(str(path), [(heading, judge(record))], records=[record])


def diagnose_run(run: Path) -> Diagnosis:
    from dltrain.diagnostics.callback import FORENSICS_FILE, RECORDS_FILE
    from dltrain.diagnostics.verdicts import growth, judge, number, total_norms
    from dltrain.rundir import read_json, read_jsonl

    records_path = run / RECORDS_FILE
    if not records_path.is_file():
        raise UsageError(f"{run} has no {RECORDS_FILE} (the run had `log.diagnostics: false`, or it predates "
                         f"diagnostics); run `dltrain diagnose {run / 'recipe.yaml'}` for the initialization check")
    records = read_jsonl(records_path)
    probes = [r for r in records if r.get("kind") == "probe"]
    diagnosis = Diagnosis(str(run), records=probes)
    picked = probes[:1] + probes[-1:] if len(probes) > 1 else probes
    for record in picked:
        diagnosis.sections.append((_heading(record), judge(record)))
    history = total_norms(sorted(records, key=lambda r: r["step"]))
    span = ""
    if (run / FORENSICS_FILE).is_file():
        diagnosis.forensics = read_json(run / FORENSICS_FILE)
        replayed = diagnosis.forensics["grad_norm_history"]["replayed"]
        history += [(row["step"], number(row["grad_norm"])) for row in replayed]
        span = f", just before the run diverged at step {diagnosis.forensics['step']}" if replayed else ""
    trend = growth(history, span)
    if trend is not None:
        diagnosis.sections.append(("during training", [trend]))
    return diagnosis


def _heading(record: dict) -> str:
    from dltrain.diagnostics.verdicts import when
    loss = record.get("loss")
    loss_text = f", loss {float(loss):.4g}" if loss is not None else ""
    return f"{when(record)} ({len(record['layers'])} layers{loss_text})"


def resolve_run(target: Path) -> Path:
    if (target / "run.json").is_file() or (target / "recipe.yaml").is_file():
        return target
    raise UsageError(f"{target} is not a run directory (no run.json inside)")


def landscape_run(run: Path, *, points: int, span: float, samples: int, seed: int, checkpoint: str) -> dict:
    """Loss landscape around a run's saved weights; writes landscape.json and landscape.png into the run."""
    import torch

    from dltrain.diagnostics.landscape import landscape
    from dltrain.diagnostics.plots import landscape_figure, save_png
    from dltrain.recipe import load_recipe
    from dltrain.rundir import load_checkpoint, write_json
    from dltrain.runner import build

    path = run / "checkpoints" / f"{checkpoint}.pt"
    if not path.is_file():
        raise UsageError(f"{path} does not exist: the run saved no `{checkpoint}` checkpoint "
                         "(a run that diverged in its first epoch saves none)")
    recipe = load_recipe(run / "recipe.yaml")
    built = build(recipe)
    built.model.load_state_dict(load_checkpoint(path, map_location=built.device)["learner"]["model"])
    loader = built.loaders["train"]
    generator = torch.Generator().manual_seed(seed)
    take = torch.randperm(loader.n, generator=generator)[:min(samples, loader.n)].to(loader.x.device)
    result = landscape(built.model, built.loss_fn, loader.x[take], loader.y[take], points=points, span=span,
                       seed=seed)
    result["checkpoint"] = checkpoint
    write_json(run / "landscape.json", result)
    save_png(landscape_figure(result), run / "landscape.png")
    return result
