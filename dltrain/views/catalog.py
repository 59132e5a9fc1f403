"""The component catalog: every registry, walked from `core.registry.REGISTRIES`."""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


def registries() -> dict:
    """Kind -> Registry, for every registry a recipe can name (importing the schema makes them all)."""
    import dltrain.recipe.schema  # noqa: F401  (every registry enters itself in REGISTRIES on import)
    from dltrain.core.registry import REGISTRIES
    return dict(REGISTRIES)


def print_catalog(console, kind: str | None) -> None:
    from dltrain.core.errors import UsageError, did_you_mean
    regs = registries()
    if kind is not None:
        by_name = {name: reg for reg in regs.values() for name in (reg.kind, reg.plural)}
        if kind not in by_name:
            raise UsageError(f"unknown kind `{kind}`{did_you_mean(kind, by_name)} (choose from: {', '.join(regs)})")
        regs = {by_name[kind].kind: by_name[kind]}
    for reg in regs.values():
        table = Table(title=reg.plural, title_justify="left", show_lines=False)
        for column in ("name", "aliases", "parameters (defaults)", "description"):
            table.add_column(column, style="bold" if column == "name" else None, overflow="fold")
        for entry in reg.entries():
            table.add_row(entry.name, ", ".join(entry.aliases), entry.describe_params(), entry.description)
        _full_width(console, table).print(table)


def _full_width(console, table) -> Console:
    """The terminal's console, or, piped or redirected, one as wide as the table: nothing is cut or
    wrapped, so a formula reads whole and each entry is one line to grep."""
    if console.is_terminal:
        return console
    natural = Measurement.get(console, console.options.update_width(100_000), table).maximum
    return Console(file=console.file, width=natural, highlight=False)
