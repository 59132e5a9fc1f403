"""Tables that fit the terminal they are printed on, and print whole everywhere else.

On a terminal a table is never folded into unreadable slivers: cells stay on one line (a run name
can be copied from it), long free text is cut with `…`, and when the columns still do not fit,
the least important ones are left out and a note under the table names them and says where to
see them. In a pipe or a file nothing is cut or left out and rows are never folded: scripts read
them (and have --format csv/json besides).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.markup import escape


@dataclass
class Column:
    header: str
    keep: int = 0  # 0 is never left out; higher numbers are left out first when the table is too wide
    justify: str = "left"
    cut_at: int | None = None  # free text (stop reasons): cut to this many characters on a terminal
    markup: bool = False  # cells are rich markup (styled status words), not user text


def print_table(console, columns: list[Column], rows: list[list[str]], *, title: str | None = None,
                row_styles: list[str | None] | None = None, left_out_hint: str = "") -> list[str]:
    """Print the table; returns the headers it left out (always none off a terminal)."""
    from rich.console import Console
    from rich.measure import Measurement

    styles = row_styles or [None] * len(rows)
    if not console.is_terminal:
        table = _table(columns, rows, styles, title, None)
        natural = Measurement.get(console, console.options.update_width(100_000), table).maximum
        Console(file=console.file, width=max(console.width, natural), highlight=False).print(table)
        return []
    def width(indices, cut):
        table = _table([columns[i] for i in indices], [[r[i] for i in indices] for r in rows], styles, title, cut)
        return table, Measurement.get(console, console.options.update_width(100_000), table).maximum

    # the columns to keep first, then each other one, most important first, where it still fits
    shown = [i for i, c in enumerate(columns) if c.keep == 0]
    for i in sorted((i for i, c in enumerate(columns) if c.keep > 0), key=lambda i: columns[i].keep):
        if width(sorted(shown + [i]), MIN_CUT)[1] <= console.width:
            shown = sorted(shown + [i])
    # free text gets what is left, up to its own limit
    spare = console.width - width(shown, MIN_CUT)[1]
    table, _ = width(shown, MIN_CUT + max(0, spare))
    console.print(table)
    left_out = [c.header for i, c in enumerate(columns) if i not in shown]
    if left_out:
        note(console, f"not shown at {console.width} columns: {', '.join(left_out)}"
                      f"{' (' + left_out_hint + ')' if left_out_hint else ''}")
    return left_out


MIN_CUT = 16  # a cut text column narrower than this says too little to be worth its place


def _table(columns: list[Column], rows: list[list[str]], styles, title, cut: int | None):
    from rich.table import Table
    table = Table(title=escape(title) if title else None, title_justify="left")
    for column in columns:
        table.add_column(escape(column.header), justify=column.justify, no_wrap=True,
                         overflow="ellipsis", max_width=min(column.cut_at, cut) if column.cut_at and cut else None)
    for cells, style in zip(rows, styles):
        table.add_row(*(cell if column.markup else escape(cell) for cell, column in zip(cells, columns)), style=style)
    return table


def note(console, text: str) -> None:
    """A line of prose under a table: on a terminal wrapped between words, never inside one (the
    terminal's own wrapping would cut words); elsewhere one line, for grep."""
    console.print(text, markup=False, highlight=False, soft_wrap=not console.is_terminal)
