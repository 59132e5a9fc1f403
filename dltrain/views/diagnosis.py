"""What `dltrain diagnose` and `dltrain landscape` print."""

from __future__ import annotations

from dltrain.rundir import layout

STYLE = {"healthy": "green"}


def out(console, text: str, **kwargs) -> None:
    """One logical line per line, never wrapped: the output is read by people and by grep."""
    console.print(text, soft_wrap=True, **kwargs)


def print_diagnosis(console, diagnosis, plot=None) -> None:
    out(console, f"diagnosis of {diagnosis.source}", style="bold")
    for heading, findings in diagnosis.sections:
        out(console, f"{heading}:")
        for finding in findings:
            style = STYLE.get(finding.problem, "red")
            out(console, f"  [{style}]{finding.problem}[/{style}]: {finding.evidence}")
    report = diagnosis.forensics
    if report is not None:
        out(console, f"[red]diverged[/red] at step {report['step']} (epoch {report['epoch']}, loss {report['loss']}): "
                      f"{report['explanation']}")
        replayed = report["grad_norm_history"]["replayed"]
        if replayed:
            norms = ", ".join(f"{row['grad_norm']:.3g}" for row in replayed)
            out(console, f"  gradient norm over steps {replayed[0]['step']}-{replayed[-1]['step']} before it: {norms}")
        out(console, "  what usually helps:")
        for tip in report["suggestions"]:
            out(console, f"    - {tip}", markup=False)
    if plot is not None:
        out(console, f"plot: {plot}")


def print_landscape(console, run, result: dict) -> None:
    line = result["loss_1d"]
    middle = len(line) // 2
    out(console, f"loss landscape of {run} ({result['checkpoint']} checkpoint, {result['samples']} training samples, "
                  f"seed {result['seed']})", style="bold")
    out(console, f"  loss at the weights: {result['center_loss']:.4g}")
    out(console, f"  1-D, {result['points']} points over +-{result['span']:g}: min {min(line):.4g}, "
                  f"at -{result['span']:g}: {line[0]:.4g}, at +{result['span']:g}: {line[-1]:.4g}, "
                  f"centre {line[middle]:.4g}")
    flat = [v for row in result["loss_2d"] for v in row]
    out(console, f"  2-D, {result['points']}x{result['points']} grid: min {min(flat):.4g}, max {max(flat):.4g}")
    out(console, f"  written: {result['picture']}, {run / layout.LANDSCAPE}")
