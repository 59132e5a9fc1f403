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


def run_subject(info: dict, name: str) -> str:
    """`run NAME (recipe quickstart.yaml, optimizer.lr=50)`: which run a picture shows, and how it
    was made (the recipe files and overrides of the command that made it, from run.json)."""
    command = info.get("command") or []
    made_of = [Path(a).name for a in command[2:] if a.endswith((".yaml", ".yml"))]
    made_of += [a for a in command[2:] if "=" in a and not a.startswith("-")]
    return f"run {name}" + (f" ({', '.join(made_of)})" if made_of else "")


def recipe_subject(path: Path, overrides: list[str]) -> str:
    return f"recipe {Path(path).name}" + (f" ({', '.join(overrides)})" if overrides else "")


def depth_figure(records: list[dict], title: str = "", forensics: dict | None = None):
    """Gradient norm and activation std against depth, one line per record (init, epochs, end);
    for a run that diverged, a third panel: the total gradient norm over the steps before it."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3 if forensics else 2, figsize=(16.5 if forensics else 11, 4.6))
    grads, acts = axes[0], axes[1]
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
    if not acts.lines:
        acts.text(0.5, 0.5, "no activation layers to measure:\nthis model has no separate activation modules\n"
                            "(an LSTM or GRU cell's tanh and sigmoids are inside the cell)",
                  transform=acts.transAxes, ha="center", va="center", fontsize=9, color="dimgray")
    for axis in (grads, acts):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=8)
    if forensics:
        _blowup(axes[2], forensics)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _blowup(axis, forensics: dict) -> None:
    """The total gradient norm over steps (recorded, then replayed up to the failing step), log scale."""
    history = forensics["grad_norm_history"]
    for rows, style, name in ((history["recorded"], "o-", "recorded"), (history["replayed"], "x-", "replayed")):
        points = [(row["step"], number(row["grad_norm"])) for row in rows
                  if row.get("grad_norm") is not None and 0 < number(row["grad_norm"]) < float("inf")]
        if points:
            axis.plot(*zip(*points), style, ms=3, label=name)
    axis.axvline(forensics["step"], color="red", lw=1, ls="--", label=f"non-finite loss (step {forensics['step']})")
    axis.set(yscale="log", xlabel="optimizer step", ylabel="total gradient norm",
             title="gradient norm before the divergence")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)


def landscape_figure(result: dict, title: str = ""):
    plt = _pyplot()
    fig, (line, grid) = plt.subplots(1, 2, figsize=(11, 4.2))
    alphas = result["alphas"]
    line.plot(alphas, result["loss_1d"], marker="o", ms=3)
    line.axvline(0.0, color="gray", lw=0.8, ls="--")
    line.set(xlabel="step along direction 1 (filter-normalized)", ylabel="loss", title="1-D loss slice")
    line.grid(alpha=0.3)
    # on a log colour scale: losses around a minimum span decades, and a linear scale spends its
    # colours on the rim, leaving the basin one dark blob
    flat = [v for row in result["loss_2d"] for v in row]
    low, high = min(flat), max(flat)
    if 0 < low < high:
        import numpy as np
        from matplotlib.colors import LogNorm
        levels = np.geomspace(low, high, 30)
        contour = grid.contourf(alphas, alphas, result["loss_2d"], levels=levels, norm=LogNorm(low, high),
                                cmap="viridis")
        grid.contour(alphas, alphas, result["loss_2d"], levels=levels[::2], colors="white", linewidths=0.4)
        scale = "loss (log scale)"
    else:
        contour = grid.contourf(alphas, alphas, result["loss_2d"], levels=30, cmap="viridis")
        grid.contour(alphas, alphas, result["loss_2d"], levels=15, colors="white", linewidths=0.4)
        scale = "loss"
    grid.plot([0], [0], marker="x", color="red")
    grid.set(xlabel="direction 1", ylabel="direction 2", title="2-D loss surface")
    fig.colorbar(contour, ax=grid, label=scale, format="{x:.3g}")
    fig.suptitle(f"{title + ': ' if title else ''}loss landscape around the {result.get('checkpoint', 'trained')} "
                 f"weights ({result['samples']} training samples, seed {result['seed']})", fontsize=10)
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
