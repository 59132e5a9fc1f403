"""A finished run's result as the CLI prints it: summary table, run directory, next commands."""

from __future__ import annotations

import shlex

from rich.table import Table

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
    console.print(result.reason)
    console.print(f"run directory: {result.run.path}")
    console.print(f"TensorBoard:   tensorboard --logdir {shlex.quote(str(result.run.path))}")
