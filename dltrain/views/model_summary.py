"""The model summary `dltrain validate` prints: layers, output shapes, parameters."""

from __future__ import annotations

from rich.table import Table


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
