"""`dltrain list` and `dltrain show`: what the run directories under a runs root hold."""

from __future__ import annotations

import shlex

from rich.markup import escape
from rich.table import Table

from dltrain.core.metrics import EPOCH_METRICS
from dltrain.core.status import RunStatus
from dltrain.rundir.reader import Run, finite

STATUS_STYLE = {RunStatus.RUNNING: "cyan", RunStatus.COMPLETED: "green", RunStatus.EARLY_STOPPED: "green",
                RunStatus.PRUNED: "yellow", RunStatus.DIVERGED: "red", RunStatus.INTERRUPTED: "yellow",
                RunStatus.FAILED: "red", RunStatus.UNKNOWN: ""}
KILLED = "killed"  # shown for a run whose run.json says `running` but whose process is gone (Run.killed)
EPOCH_COLUMNS = ("epoch", "step", "lr", *EPOCH_METRICS, "grad_norm", "penalty", "seconds")


def print_wide(console, table) -> None:
    """On a terminal, fit its width; in a pipe or a file, never fold a row (scripts read them)."""
    from rich.measure import Measurement
    if console.is_terminal:
        console.print(table)
        return
    from rich.console import Console
    natural = Measurement.get(console, console.options.update_width(100_000), table).maximum
    Console(file=console.file, width=max(console.width, natural), highlight=False).print(table)


def heading(console, text: str) -> None:
    console.print(f"\n[bold]── {text}[/bold]")


def _status(run: Run) -> str:
    word, style = (KILLED, "red") if run.killed else (run.status, STATUS_STYLE[run.status])
    return f"[{style}]{word}[/{style}]" if style else str(word)


def print_resume_commands(console, runs: list[Run]) -> None:
    """Each command on a line of its own, never wrapped, so that it can be copied."""
    for run in runs:
        console.print(f"  dltrain resume {shlex.quote(str(run.path))}", markup=False, soft_wrap=True)


def _number(value) -> str:
    if not finite(value):
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"


def best_text(run: Run, with_name: bool = True) -> str:
    s = run.summary
    if s.get("best_value") is None:
        return "—"
    return f"{s['monitor'] + ' ' if with_name else ''}{_number(s['best_value'])} (epoch {s.get('best_epoch')})"


def test_text(run: Run) -> str:
    test = run.summary.get("test") or {}
    return ", ".join(f"{k.removeprefix('test_')} {_number(v)}" for k, v in test.items()) or "—"


def epochs_text(run: Run) -> str:
    planned = run.epochs_planned
    return f"{run.epochs_done}/{planned}" if planned else str(run.epochs_done)


def time_text(run: Run) -> str:
    return "—" if run.wall_time is None else f"{run.wall_time:.1f}s"


LIST_COLUMNS = (("name", 0), ("status", 0), ("epochs", 1), ("best", 2), ("test", 4), ("time", 5),
                ("started", 3), ("batch", 6))  # (header, which goes first when the terminal is narrow)


def print_list(console, runs: list[Run], root) -> None:
    from dltrain.views.tables import Column, print_table
    with_batch = any(r.batch for r in runs)
    monitors = {r.summary.get("monitor") for r in runs if r.summary.get("best_value") is not None}
    one_monitor = monitors.pop() if len(monitors) == 1 else None  # then named once, in the header
    columns = [Column(f"best {one_monitor}" if header == "best" and one_monitor else header, keep, justify="right" if header in ("epochs", "time") else "left",
                      markup=header == "status")
               for header, keep in LIST_COLUMNS if header != "batch" or with_batch]
    rows = [[run.name, _status(run), epochs_text(run), best_text(run, with_name=not one_monitor), test_text(run), time_text(run),
             run.started.replace("T", " ")[:19]] + ([run.batch or ""] if with_batch else []) for run in runs]
    print_table(console, columns, rows, title=f"{len(runs)} run{'s' if len(runs) != 1 else ''} under {root}, "
                "newest first", left_out_hint="all of a run: dltrain show NAME")
    killed = [run for run in runs if run.killed]
    if killed:
        console.print(f"{KILLED}: run.json says `running`, but the process is gone from this host; continue with:",
                      markup=False, soft_wrap=True)
        print_resume_commands(console, killed)


def print_show(console, run: Run) -> None:
    info = run.info
    console.print(f"[bold]{escape(run.name)}[/bold]  {_status(run)}  ({escape(str(run.path))})")
    facts = [("started", info.get("started")), ("ended", info.get("ended")), ("device", info.get("device")),
             ("seed", info.get("seed")), ("parameters", f"{run.parameters:,}" if run.parameters else None),
             ("batch", run.batch), ("data", _data_text(info.get("data"))), ("loss", info.get("loss")),
             ("command", " ".join(info.get("command") or []))]
    for key, value in facts:
        if value not in (None, ""):
            console.print(f"  {key:<11}{value}", markup=False, soft_wrap=not console.is_terminal)

    heading(console, "resolved recipe")
    console.print(run.recipe_text or "(recipe.yaml is missing)", markup=False, end="")

    heading(console, "summary")
    summary = Table(show_header=False)
    summary.add_column("")
    summary.add_column("", justify="right")
    summary.add_row("epochs", epochs_text(run))
    summary.add_row(f"best {run.summary.get('monitor', '')}".strip(), best_text(run, with_name=False))
    for key, value in (run.summary.get("final") or {}).items():
        summary.add_row(f"final {key}", _number(value))
    for key, value in (run.summary.get("test") or {}).items():
        summary.add_row(key, _number(value))
    summary.add_row("time", time_text(run))
    if run.parameters:
        summary.add_row("parameters", f"{run.parameters:,}")
    print_wide(console, summary)

    heading(console, "per epoch")
    print_epochs(console, run)

    heading(console, "how it ended")
    if run.killed:
        console.print(f"{KILLED}: run.json says `running`, but its process (pid {info.get('pid')} on "
                      f"{info.get('host')}) is gone: it was killed before it could record how it ended",
                      markup=False, soft_wrap=True)
        console.print("continue it with:")
        print_resume_commands(console, [run])
        return
    console.print(f"{run.status}: {info.get('stop_reason') or 'no stop reason recorded'}", markup=False)
    if run.error_file.is_file():
        console.print(run.error_file.read_text(encoding="utf-8").rstrip(), markup=False, style="red")
    if run.status is RunStatus.RUNNING:
        console.print(f"run.json says `running` (pid {info.get('pid')} on {info.get('host')}): either it is still "
                      "going, or it was killed before it could record how it ended", markup=False)


def print_epochs(console, run: Run) -> None:
    history = run.history
    if not history:
        console.print("(no epoch finished: metrics.csv is missing or empty)")
        return
    columns = [c for c in EPOCH_COLUMNS if any(c in row for row in history)]
    columns += [c for c in history[0] if c not in columns]
    best_epoch = run.summary.get("best_epoch")
    from dltrain.views.tables import Column, print_table
    table_columns = [Column("", 0), *(Column(c, _epoch_column_keep(c), justify="right") for c in columns)]
    rows = [["best" if row.get("epoch") == best_epoch else "",
             *[_number(row.get(c)) if c != "lr" else f"{row.get(c, 0):.3g}" for c in columns]] for row in history]
    print_table(console, table_columns, rows, row_styles=["bold" if r[0] else None for r in rows],
                left_out_hint=f"every column: {run.metrics_file}")


def _epoch_column_keep(column: str) -> int:
    """On a narrow terminal: epoch and validation numbers first, then training, then the rest."""
    if column == "epoch":
        return 0
    return 1 if column.startswith("val_") else 2 if column.startswith("train_") else 3


def _data_text(data: dict | None) -> str | None:
    if not data:
        return None
    return (f"{data.get('task')}, {data.get('train')} train / {data.get('val')} validation / "
            f"{data.get('test')} test samples, batch size {data.get('batch_size')}")
