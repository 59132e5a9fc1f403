"""Tables the CLI prints: a run's result, a model summary, the component catalog."""

from __future__ import annotations

from rich.table import Table

KINDS = {
    "activation": ("dltrain.components", "ACTIVATIONS"),
    "initializer": ("dltrain.components", "INITIALIZERS"),
    "optimizer": ("dltrain.components", "OPTIMIZERS"),
    "schedule": ("dltrain.components", "SCHEDULES"),
    "loss": ("dltrain.components", "LOSSES"),
    "dataset": ("dltrain.data", "DATASETS"),
    "architecture": ("dltrain.models", "ARCHITECTURES"),
    "augmentation": ("dltrain.data.augment", "AUGMENTATIONS"),
    "method": ("dltrain.components.search", "METHODS"),  # sweep.method
    "pruner": ("dltrain.components.search", "PRUNERS"),  # sweep.pruner
}


def registries() -> dict:
    import importlib
    return {kind: getattr(importlib.import_module(mod), name) for kind, (mod, name) in KINDS.items()}


def print_catalog(console, kind: str | None) -> None:
    from dltrain.core.errors import UsageError, did_you_mean
    regs = registries()
    if kind is not None:
        kind = kind.rstrip("s") if kind.rstrip("s") in regs else kind
        if kind not in regs:
            raise UsageError(f"unknown kind `{kind}`{did_you_mean(kind, regs)} (choose from: {', '.join(regs)})")
        regs = {kind: regs[kind]}
    for name, reg in regs.items():
        table = Table(title=f"{name}s", title_justify="left", show_lines=False)
        table.add_column("name", style="bold")
        table.add_column("aliases")
        table.add_column("parameters (defaults)")
        table.add_column("description")
        for entry in reg.entries():
            table.add_row(entry.name, ", ".join(entry.aliases), entry.describe_params(), entry.description)
        console.print(table)
