"""Learning curves of compared runs, overlaid: `dltrain compare --plot FILE.png`.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global backend
switch). One line per row of the comparison: a seed group is its mean with a band of ± one
sample std, taken at each epoch over the group's runs that reached it (early stopping makes
groups ragged). Labels are the table's: the keys that were varied, by their short names.

How each run ended is drawn, not only written: an early-stopped run's curve ends in a dot at the
epoch it stopped; a run that did not finish is dotted to its last recorded epoch and ends in an x,
and one that diverged has an x at the top edge of each panel at the epoch it blew up (drawn even
when it finished no epoch at all). The legend sits under the panels, so that long labels never
squeeze them. Losses that span a decade or more are drawn on a log axis (`--log-y auto`).
"""

from __future__ import annotations

import math
from pathlib import Path

from dltrain.core.metrics import TRAIN_EVAL
from dltrain.core.status import RunStatus
from dltrain.rundir.reader import finite
from dltrain.rundir.writer import atomic_write
from dltrain.views.compare import Comparison, Row, compared_text, config_label

LOG_Y = ("auto", "on", "off")
DECADE = 10.0  # `auto`: a log axis once the largest value is this many times the smallest
LEGEND_ROW_INCHES = 0.24  # one legend row at fontsize "small"


def label(c: Comparison, row: Row) -> str:
    text = config_label(c, row) or row.runs[0].info.get("name", row.runs[0].name)
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


def panels(c: Comparison) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(title, y label, [(metrics.csv column, line style)]) for each subplot."""
    split = {"val": "validation", "train": "training", TRAIN_EVAL: "training (eval mode)"}[c.split]
    first = (f"{split} {c.metric}", f"{c.split}_{c.metric}", [(f"{c.split}_{c.metric}", "-")])
    if c.metric == "loss":  # the other side of the train/validation gap
        other = ("validation loss", "val_loss") if c.split != "val" else ("training loss", "train_loss")
        return [first, (*other, [(other[1], "-")])]
    return [first, ("loss (solid: validation, dashed: training)", "loss", [("val_loss", "-"), ("train_loss", "--")])]


def wants_log(values: list[float], log_y: str, errors: bool) -> bool:
    """Errors (losses, mae, rmse: lower is better, above zero) on a log axis when asked, or in
    `auto` once they span a decade, where a linear axis flattens the late epochs near zero."""
    positive = [v for v in values if v > 0]
    if not errors or log_y == "off" or not positive or len(positive) < len(values):
        return False
    return log_y == "on" or max(positive) / min(positive) >= DECADE


def curves_figure(c: Comparison, log_y: str = "auto"):
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    plain = FuncFormatter(lambda value, _: f"{value:.3g}")

    layout = panels(c)
    labels = [label(c, row) for row in c.rows]
    columns = legend_columns(labels)
    legend_rows = -(-(len(labels) + 2) // columns)
    fig = Figure(figsize=(6 * len(layout), 4.4 + LEGEND_ROW_INCHES * legend_rows), layout="constrained")
    axes = fig.subplots(1, len(layout), squeeze=False)[0]
    colors = [f"C{i % 10}" for i in range(len(c.rows))]
    ended_marks: set[str] = set()
    for ax, (title, ylabel, series) in zip(axes, layout):
        drawn: list[float] = []
        for row, color in zip(c.rows, colors):
            for column, style in series:
                epochs, means, stds = curve(row, column)
                first_series = column == series[0][0]
                if epochs:
                    ax.plot(epochs, means, linestyle=style if row.complete else ":", color=color, linewidth=1.6)
                    drawn += means
                    ended_marks |= _mark_end(ax, row, epochs, means, color)
                spread = [(e, m, s) for e, m, s in zip(epochs, means, stds) if s is not None]
                if row.complete and spread and first_series:
                    e, m, s = zip(*spread)
                    ax.fill_between(e, [a - b for a, b in zip(m, s)], [a + b for a, b in zip(m, s)],
                                    color=color, alpha=0.2, linewidth=0)
            ended_marks |= _mark_divergence(ax, row, color)
        if wants_log(drawn, log_y, errors=c.mode == "min" or ylabel.endswith("loss")):
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(plain)  # 0.2, not 2 x 10^-1
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:.3g}" if f"{v:.0e}"[0] in "25" else ""))
            ylabel += " (log scale)"
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3, which="both" if ax.get_yscale() == "log" else "major")
    handles = [Line2D([], [], color=color, linewidth=1.6, linestyle="-" if row.complete else ":")
               for row, color in zip(c.rows, colors)]
    marks = {"stopped": Line2D([], [], color="gray", marker="o", linestyle="", label="early stopped here"),
             "x": Line2D([], [], color="gray", marker="x", linestyle="", label="did not finish: its last epoch; "
                                                                                "diverged: top edge")}
    extra = [marks[k] for k in ("stopped", "x") if k in ended_marks]
    fig.legend(handles + extra, labels + [h.get_label() for h in extra], loc="outside lower center",
               ncols=columns, fontsize="small", frameon=False)
    bands = "; bands: ± 1 sample std over seeds" if any(r.complete and r.n > 1 for r in c.rows) else ""
    fig.suptitle(f"{c.title}\n{compared_text(c)}{bands}", fontsize="medium")
    return fig


def legend_columns(labels: list[str], chars_per_column: int = 110) -> int:
    """As many legend columns as the longest label allows across the figure (at most 3)."""
    longest = max((len(text) for text in labels), default=1) + 6
    return max(1, min(3, len(labels), chars_per_column // longest))


def _mark_end(ax, row: Row, epochs: list[int], means: list[float], color: str) -> set[str]:
    """A dot where each early-stopped run of the row stopped; an x where an unfinished run ends."""
    if not row.complete:
        ax.plot(epochs[-1:], means[-1:], marker="x", color=color, markersize=8, linestyle="")
        return {"x"}
    stops = {run.epochs_done for run in row.runs if run.status is RunStatus.EARLY_STOPPED}
    points = [(e, m) for e, m in zip(epochs, means) if e in stops]
    if points:
        ax.plot(*zip(*points), marker="o", color=color, markersize=5, linestyle="")
        return {"stopped"}
    return set()


def _mark_divergence(ax, row: Row, color: str) -> set[str]:
    """An x on the top edge at the epoch a diverged run blew up in: its curve cannot go there."""
    diverged = [run for run in row.runs if run.status is RunStatus.DIVERGED]
    for run in diverged:
        ax.plot([run.epochs_done + 1], [0.97], marker="x", color=color, markersize=9, mew=2, linestyle="",
                transform=ax.get_xaxis_transform(), clip_on=False)
    return {"x"} if diverged else set()


def plot_curves(c: Comparison, path: Path, log_y: str = "auto") -> Path:
    fig = curves_figure(c, log_y)
    path = Path(path)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110), binary=True)
    return path
