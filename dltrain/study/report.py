"""A study's report: report.md (claims and verdicts, the arms table, how to reproduce), curves.png
(learning curves with seed bands), depth.png where depth statistics were collected, numbers.json."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

from dltrain.rundir.writer import atomic_write, write_json, write_text
from dltrain.study import quantities
from dltrain.study.conduct import Outcome
from dltrain.study.verdict import fmt

CURVES, DEPTH, REPORT, NUMBERS = "curves.png", "depth.png", "report.md", "numbers.json"


def write_report(outcome: Outcome, folder: Path, command: str, runs_root: Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = []
    runs = [r for rs in outcome.runs.values() for r in rs]
    if runs:
        figures.append(_curves(outcome, runs, folder / CURVES))
    if quantities.needs_depth(outcome.study.quantities):
        figures.append(_depth(outcome, folder / DEPTH))
    write_text(folder / REPORT, markdown(outcome, command, runs_root, [f for f in figures if f]))
    write_json(folder / NUMBERS, numbers(outcome))
    return folder / REPORT


def settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in settings.items()) or "(base)"


def cell(outcome: Outcome, arm: str, quantity: str) -> str:
    result = outcome.arms[arm]
    mean, std = result.mean(quantity), result.std(quantity)
    if mean is None:
        return "—"
    return fmt(mean) + (f" ± {fmt(std)}" if std is not None else "")


def form_text(outcome: Outcome) -> str:
    study = outcome.study
    text = f"{'quick' if study.quick else 'full'} form, {study.seeds} seed{'s' if study.seeds != 1 else ''}"
    if study.quick and study.spec.quick.set:
        text += f"; quick settings for every arm: {settings_text(study.spec.quick.set)}"
    if study.overrides:
        text += f"; command-line overrides: {' '.join(study.overrides)}"
    return text


def markdown(outcome: Outcome, command: str, runs_root: Path, figures: list[str]) -> str:
    study, spec = outcome.study, outcome.study.spec
    lines = [f"# Study `{study.name}`", "", spec.summary, ""]
    if spec.lesson:
        lines += [f"**Lesson.** {spec.lesson.strip()}", ""]
    lines += [f"- date: {outcome.started}", f"- command: `{command}`",
              f"- form: {form_text(outcome)}",
              f"- time: {outcome.seconds:.0f} s for {sum(len(r) for r in outcome.runs.values())} runs "
              f"(budget for the full form: {spec.budget_s} s on 2 CPU cores)",
              f"- machine: {outcome.load} at the start", f"- batch: `{outcome.batch}`", "",
              "## Claims", "", "| claim | verdict | reason |", "|---|---|---|"]
    for claim, v in zip(spec.claims, outcome.verdicts):
        lines.append(f"| {v.claim} | **{v.verdict}** | {v.reason} |")
    lines.append("")
    for claim, v in zip(spec.claims, outcome.verdicts):
        if claim.why:
            lines += [f"- {v.claim}: {claim.why.strip()}"]
        if v.verdict != "confirmed" and claim.otherwise:
            lines += [f"  - what would change it: {claim.otherwise.strip()}"]
    lines += ["", "## Arms", "", "mean ± sample std (ddof=1) over the seeds that measured it; n = runs", ""]
    names = study.quantities
    lines += ["| arm | settings | n | ended | " + " | ".join(names) + " |",
              "|---|---|---|---|" + "---|" * len(names)]
    for arm in spec.arms:
        result = outcome.arms[arm.name]
        ended = ", ".join(f"{result.statuses.count(s)} {s}" for s in dict.fromkeys(result.statuses)) or "no runs"
        lines.append(f"| {arm.name} | {settings_text(arm.set)} | {len(result.statuses)} | {ended} | "
                     + " | ".join(cell(outcome, arm.name, q) for q in names) + " |")
    lines += ["", "Tests: Welch's t-test (scipy.stats.ttest_ind, equal_var=False, two-sided) between the two arms "
              "a `beats` claim names, on the per-seed values; no correction for multiple claims.", ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in figures] + [""]
    lines += ["## Reproduce", "", "```", command,
              f"dltrain compare {outcome.batch}{_runs_dir(runs_root)}"]
    for arm in spec.arms:
        runs = outcome.runs[arm.name]
        if runs:
            lines.append(f"dltrain run {shlex.quote(str(runs[0].recipe_file))} --seeds {study.seeds}"
                         f"{_runs_dir(runs_root)}   # arm {arm.name} alone")
    lines += ["```", ""]
    return "\n".join(lines)


def _runs_dir(runs_root: Path) -> str:
    return "" if Path(runs_root) == Path("runs") else f" --runs-dir {shlex.quote(str(runs_root))}"


def numbers(outcome: Outcome) -> dict:
    return {"study": outcome.study.name, "batch": outcome.batch, "seconds": round(outcome.seconds, 1),
            "quick": outcome.study.quick, "seeds": outcome.study.seeds,
            "verdicts": [{"claim": v.claim, "verdict": v.verdict, "reason": v.reason, "p_value": v.p_value}
                         for v in outcome.verdicts],
            "arms": {name: {"statuses": a.statuses, "runs": [r.name for r in outcome.runs[name]],
                            "values": {q: [v if v is not None and math.isfinite(v) else None for v in vals]
                                       for q, vals in a.values.items()}}
                     for name, a in outcome.arms.items()}}


def _curves(outcome: Outcome, runs: list, path: Path) -> str | None:
    from dltrain.views.compare import build
    from dltrain.views.curves import plot_curves
    metric = next((quantities.base_metric(q) for q in outcome.study.quantities if quantities.base_metric(q)), None)
    comparison = build(runs, title=f"study {outcome.study.name}", metric=metric)
    for row in comparison.rows:  # label each curve by its arm, not by every differing recipe key
        row.config = {"arm": row.runs[0].info["study"]["arm"]}
    comparison.keys = ["arm"]
    plot_curves(comparison, path)
    return str(path)


def _depth(outcome: Outcome, path: Path) -> str | None:
    """Gradient norm per layer and activation std per activation at initialization, mean over seeds."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    grad_ax, std_ax = fig.subplots(1, 2)
    drawn = False
    for i, (arm, runs) in enumerate(outcome.runs.items()):
        profiles = [quantities.depth_profile(r) for r in runs]
        for ax, k in ((grad_ax, 0), (std_ax, 1)):
            series = [p[k] for p in profiles if p[k]]
            if not series:
                continue
            depth = min(map(len, series))
            mean = [sum(s[j] for s in series) / len(series) for j in range(depth)]
            ax.plot(range(1, depth + 1), mean, marker="o", color=f"C{i % 10}", label=f"{arm} (n={len(series)})")
            drawn = True
    if not drawn:
        return None
    grad_ax.set(yscale="log", title="gradient norm per layer at initialization", xlabel="layer (1 = input side)")
    std_ax.set(yscale="log", title="activation std at initialization", xlabel="activation (1 = input side)")
    for ax in (grad_ax, std_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"study {outcome.study.name}: depth profiles (mean over seeds)")
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=100), binary=True)
    return str(path)
