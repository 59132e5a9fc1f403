"""Figures (matplotlib, Agg backend: no display needed): depth profiles and loss landscapes."""

from __future__ import annotations

import io
from pathlib import Path

from dltrain.diagnostics.verdicts import number


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def label(record: dict) -> str:
    phase = record.get("phase")
    if phase == "init":
        return "initialization"
    if phase == "end":
        return f"end (epoch {record['epoch']})"
    return f"epoch {record['epoch']}"


def depth_figure(records: list[dict]):
    """Gradient norm and activation std against depth, one line per record (init, epochs, end)."""
    plt = _pyplot()
    fig, (grads, acts) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.cm.viridis([i / max(1, len(records) - 1) for i in range(len(records))])
    for record, color in zip(records, colors):
        points = [(layer["index"], number(layer["grad_norm"])) for layer in record["layers"]
                  if layer.get("grad_norm") is not None and number(layer["grad_norm"]) > 0]
        if points:
            grads.plot(*zip(*points), marker="o", ms=3, color=color, label=label(record))
        points = [(a["index"], number(a["std"])) for a in record["activations"]
                  if a.get("std") is not None and number(a["std"]) > 0]
        if points:
            acts.plot(*zip(*points), marker="o", ms=3, color=color, label=label(record))
    grads.set(yscale="log", xlabel="layer (1 = input side)", ylabel="gradient norm",
              title="gradient norm by depth")
    acts.set(yscale="log", xlabel="layer the activation follows", ylabel="activation std",
             title="activation std by depth")
    from matplotlib.ticker import MaxNLocator
    for axis in (grads, acts):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


def landscape_figure(result: dict):
    plt = _pyplot()
    fig, (line, grid) = plt.subplots(1, 2, figsize=(11, 4.2))
    alphas = result["alphas"]
    line.plot(alphas, result["loss_1d"], marker="o", ms=3)
    line.axvline(0.0, color="gray", lw=0.8, ls="--")
    line.set(xlabel="step along direction 1 (filter-normalized)", ylabel="loss", title="1-D loss slice")
    line.grid(alpha=0.3)
    contour = grid.contourf(alphas, alphas, result["loss_2d"], levels=30, cmap="viridis")
    grid.contour(alphas, alphas, result["loss_2d"], levels=15, colors="white", linewidths=0.4)
    grid.plot([0], [0], marker="x", color="red")
    grid.set(xlabel="direction 1", ylabel="direction 2", title="2-D loss surface")
    fig.colorbar(contour, ax=grid, label="loss")
    fig.suptitle(f"loss landscape around the trained weights ({result['samples']} training samples, "
                 f"seed {result['seed']})", fontsize=10)
    fig.tight_layout()
    return fig


def png_bytes(fig) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def save_png(fig, path: Path) -> None:
    """Atomically, like every other file dltrain writes."""
    from dltrain.rundir.writer import atomic_write
    data = png_bytes(fig)
    atomic_write(Path(path), lambda handle: handle.write(data), binary=True)
