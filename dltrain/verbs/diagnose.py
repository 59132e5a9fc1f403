"""`dltrain diagnose`: plain-language verdicts on a run's records, or an initialization check of a recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dltrain.core.errors import UsageError
from dltrain.core.words import plural
from dltrain.diagnostics.probes import fixed_batch
from dltrain.rundir import layout


@dataclass
class Diagnosis:
    source: str
    sections: list[tuple[str, list]] = field(default_factory=list)  # (heading, findings)
    forensics: dict | None = None
    records: list[dict] = field(default_factory=list)  # the probe records, for --plot


def diagnose_recipe(path: Path, overrides: list[str]) -> Diagnosis:
    """The initialization check alone: build the recipe, one forward/backward on a fixed batch."""
    from dltrain.builder.objects import build, load_checked
    from dltrain.diagnostics.probes import Probe, probe_pass
    from dltrain.diagnostics.verdicts import judge

    recipe = load_checked(path, overrides)
    built = build(recipe)
    x, y = fixed_batch(built.loaders["train"])
    record = probe_pass(built.model, built.loss_fn, x, y, Probe(built.model)).to_host()
    heading = (f"initialization check of {path} ({plural(len(record['layers']), 'layer')}, one forward/backward "
               f"on {plural(len(x), 'training sample')}, loss {float(record['loss']):.4g})")
    return Diagnosis(str(path), [(heading, judge(record))], records=[record])


def diagnose_run(run: Path) -> Diagnosis:
    from dltrain.diagnostics.verdicts import growth, judge, number, total_norms
    from dltrain.rundir.writer import read_json, read_jsonl

    records_path = run / layout.DIAGNOSTICS
    if not records_path.is_file():
        raise UsageError(f"{run} has no {layout.DIAGNOSTICS} (the run had `log.diagnostics: false`, or it predates "
                         f"diagnostics); run `dltrain diagnose {run / layout.RECIPE}` for the initialization check")
    records = read_jsonl(records_path)
    probes = [r for r in records if r.get("kind") == "probe"]
    diagnosis = Diagnosis(str(run), records=probes)
    picked = probes[:1] + probes[-1:] if len(probes) > 1 else probes
    for record in picked:
        diagnosis.sections.append((_heading(record), judge(record)))
    history = total_norms(sorted(records, key=lambda r: r["step"]))
    span = ""
    if (run / layout.FORENSICS).is_file():
        diagnosis.forensics = read_json(run / layout.FORENSICS)
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
    return f"{when(record)} ({plural(len(record['layers']), 'layer')}{loss_text})"


def read_run_info(run: Path) -> dict:
    from dltrain.rundir.writer import read_json
    return read_json(run / layout.RUN_INFO) if (run / layout.RUN_INFO).is_file() else {}


def diagnose(target: Path, overrides: list[str], plot: Path | None, console) -> None:
    """A run directory: its recorded diagnostics; a recipe file: the initialization check."""
    from dltrain.rundir.reader import load_run
    from dltrain.views.diagnosis import print_diagnosis

    from dltrain.views.diagnostic_figures import recipe_subject, run_subject

    if target.is_dir():
        if overrides:
            raise UsageError("KEY=VALUE overrides apply to a recipe, not to a run directory")
        diagnosis = diagnose_run(load_run(target).path)
        subject = run_subject(read_run_info(target), target.resolve().name)
    elif target.is_file():
        diagnosis = diagnose_recipe(target, overrides)
        subject = recipe_subject(target, overrides)
    else:
        raise UsageError(f"{target}: no such run directory or recipe file")
    if plot is not None:
        from dltrain.views.diagnostic_figures import depth_figure, save_png
        save_png(depth_figure(diagnosis.records, subject, diagnosis.forensics), plot)
    print_diagnosis(console, diagnosis, plot)
