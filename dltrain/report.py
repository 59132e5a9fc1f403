"""Tables the CLI prints: a run's result, a model summary, the component catalog."""

from __future__ import annotations

import shlex

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
    "method": ("dltrain.sweep.methods", "METHODS"),  # sweep.method
    "pruner": ("dltrain.sweep.methods", "PRUNERS"),  # sweep.pruner
}


def registries() -> dict:
    import importlib
    return {kind: getattr(importlib.import_module(mod), name) for kind, (mod, name) in KINDS.items()}


def print_catalog(console, kind: str | None) -> None:
    from dltrain.errors import UsageError, did_you_mean
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


def print_model_summary(console, built) -> None:
    from dltrain.models.build import summarize
    rows = summarize(built.model, built.data.input_shape)
    table = Table(title=f"model: {built.recipe.model.arch}  (input {list(built.data.input_shape)}, "
                        f"{built.data.task}, loss {built.loss_name})", title_justify="left")
    for col in ("layer", "type", "output shape", "parameters"):
        table.add_column(col, justify="right" if col == "parameters" else "left")
    for row in rows:
        table.add_row(row["name"], row["type"], str(row["output_shape"]), f"{row['params']:,}")
    total = sum(p.numel() for p in built.model.parameters())
    trainable = sum(p.numel() for p in built.model.parameters() if p.requires_grad)
    table.add_row("total", "", "", f"{total:,}" + ("" if trainable == total else f" ({trainable:,} trainable)"),
                  style="bold")
    console.print(table)
    transfer = getattr(built, "transfer", None)
    if transfer:
        loaded = f"loaded {len(transfer['loaded'])} tensors from {transfer['from']}" if "from" in transfer else "no weights loaded"
        reset = f", head `{transfer['head']}` newly initialized" if transfer.get("reset_head") else ""
        frozen = f", {len(transfer['frozen'])} parameter tensors frozen" if "frozen" in transfer else ""
        console.print(f"transfer: {loaded}{reset}{frozen}", markup=False)
    d = built.data.describe()
    console.print(f"data: {d['train']} train / {d['val']} validation / {d['test']} test samples, "
                  f"batch size {d['batch_size']}")


def print_result(console, result) -> None:
    summary = result.summary
    style = {"completed": "green", "early_stopped": "green", "diverged": "red", "failed": "red"}.get(result.status, "yellow")
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
