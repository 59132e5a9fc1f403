"""A finished run's result as the CLI prints it: summary table, run directory, next commands."""

from __future__ import annotations

import shlex

from rich.table import Table

from dltrain.core.status import RunStatus
from dltrain.rundir import layout
from dltrain.views.runs import STATUS_STYLE


def print_result(console, result) -> None:
    summary = result.summary
    style = STATUS_STYLE[result.status]
    table = Table(title=f"{result.run.path.name}: [{style}]{result.status}[/{style}]", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("epochs", str(summary["epochs"]))
    if summary["best_epoch"] is not None:
        table.add_row(f"best {summary['monitor']}", f"{summary['best_value']:.4f} (epoch {summary['best_epoch']})")
    for key, value in summary["final"].items():
        table.add_row(f"final {key}", f"{value:.4f}")
    for key, value in summary["test"].items():
        table.add_row(key, f"{value:.4f}")
    table.add_row("time", f"{summary['wall_time_s']:.1f}s")
    table.add_row("parameters", f"{summary['parameters']:,}")
    console.print(table)
    console.print(result.reason, markup=False)
    console.print(f"run directory: {result.run.path}", markup=False, soft_wrap=True)
    path = shlex.quote(str(result.run.path))
    if has_event_files(result.run):  # log.tensorboard: false writes none
        print_command(console, "TensorBoard:", f"tensorboard --logdir {path}")
    if result.status is RunStatus.INTERRUPTED:
        print_command(console, "continue it:", f"dltrain resume {path}")


def has_event_files(run) -> bool:
    folders = (layout.TRAIN_EVENTS, layout.VALIDATION_EVENTS, layout.DIAGNOSTICS_EVENTS, layout.SESSION_EVENTS)
    return any(any(run.events(folder).glob(layout.EVENT_FILES)) for folder in folders)


def print_command(console, label: str, command: str) -> None:
    """A command to copy: alone on its line, never folded (a long path runs past the terminal's edge
    and the terminal wraps it, so a copy is still one line)."""
    console.print(label, markup=False)
    console.print(f"  {command}", markup=False, soft_wrap=True)
