"""Learning curves of compared runs, overlaid: `dltrain compare --plot FILE.png`.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global backend
switch). One line per run; a seed group is its mean with a band of ± one sample std, taken at
each epoch over the group's runs that reached it (early stopping makes groups ragged).
Runs that did not finish are dotted, end in an x, and are labelled with their status.
"""

from __future__ import annotations

import math
from pathlib import Path

from dltrain.rundir.reader import finite
from dltrain.rundir.writer import atomic_write
from dltrain.views.compare import Comparison, Row, value_text


def short_keys(keys: list[str]) -> dict[str, str]:
    """model.activation -> activation, unless two keys would then read the same."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def label(c: Comparison, row: Row) -> str:
    names = short_keys(c.keys)
    text = ", ".join(f"{names[k]}={value_text(row.config[k])}" for k in c.keys) or row.runs[0].info.get("name", row.runs[0].name)
    if row.complete:
        return f"{text} (n={row.n})" if row.n > 1 else text
    return f"{text} ({row.runs[0].status})"


def curve(row: Row, column: str) -> tuple[list[int], list[float], list[float | None]]:
    """Epochs, mean and sample std of `column` over the row's runs (std None where fewer than 2)."""
    by_epoch: dict[int, list[float]] = {}
    for run in row.runs:
        for record in run.history:
            if finite(record.get(column)):
                by_epoch.setdefault(int(record["epoch"]), []).append(float(record[column]))
    epochs = sorted(by_epoch)
    means, stds = [], []
    for e in epochs:
        vals = by_epoch[e]
        m = sum(vals) / len(vals)
        means.append(m)
        stds.append(math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None)
    return epochs, means, stds


def panels(c: Comparison) -> list[tuple[str, list[tuple[str, str]]]]:
    """(title, [(metrics.csv column, line style)]) for each subplot."""
    first = (f"{c.split}_{c.metric}", [(f"{c.split}_{c.metric}", "-")])
    if c.metric == "loss":
        return [first, ("train_loss", [("train_loss", "-")])]
    return [first, ("loss (solid: val, dashed: train)", [("val_loss", "-"), ("train_loss", "--")])]


def plot_curves(c: Comparison, path: Path) -> Path:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    layout = panels(c)
    fig = Figure(figsize=(6 * len(layout), 4.8), layout="constrained")
    axes = fig.subplots(1, len(layout), squeeze=False)[0]
    colors = [f"C{i % 10}" for i in range(len(c.rows))]
    for ax, (title, series) in zip(axes, layout):
        for row, color in zip(c.rows, colors):
            for column, style in series:
                epochs, means, stds = curve(row, column)
                if not epochs:
                    continue
                first_series = column == series[0][0]
                ax.plot(epochs, means, linestyle=style if row.complete else ":", color=color, linewidth=1.6,
                        label=label(c, row) if first_series else None)
                if not row.complete:
                    ax.plot(epochs[-1:], means[-1:], marker="x", color=color, markersize=8)
                spread = [(e, m, s) for e, m, s in zip(epochs, means, stds) if s is not None]
                if row.complete and spread and first_series:
                    e, m, s = zip(*spread)
                    ax.fill_between(e, [a - b for a, b in zip(m, s)], [a + b for a, b in zip(m, s)],
                                    color=color, alpha=0.2, linewidth=0)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small")
    bands = " (bands: ± 1 sample std over seeds)" if any(r.complete and r.n > 1 for r in c.rows) else ""
    fig.suptitle(c.title + bands)
    path = Path(path)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110), binary=True)
    return path
