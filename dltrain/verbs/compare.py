"""`dltrain compare`: runs side by side, seed groups pooled, Welch's t-test against the best group."""

from __future__ import annotations

import sys
from pathlib import Path

from dltrain.core.errors import UsageError, did_you_mean

FORMATS = ("table", "markdown", "csv", "json")


def compare(selectors: list[str], runs_dir: Path, *, metric: str | None, sort: str | None, output_format: str,
            plot: Path | None, console, log_y: str = "auto") -> None:
    from dltrain.rundir.reader import latest_batch, select
    from dltrain.views.compare import (
        build,
        render_csv,
        render_json,
        render_markdown,
        render_table,
    )

    renderers = {"markdown": render_markdown, "csv": render_csv, "json": render_json}
    if output_format not in FORMATS:
        raise UsageError(f"unknown format `{output_format}`{did_you_mean(output_format, FORMATS)} "
                         f"(choose from: {', '.join(FORMATS)})")
    from dltrain.views.curves import LOG_Y
    if log_y not in LOG_Y:
        raise UsageError(f"--log-y: expected one of {', '.join(LOG_Y)}, got `{log_y}`{did_you_mean(log_y, LOG_Y)}")
    if plot is not None and plot.suffix.lower() != ".png":
        raise UsageError(f"--plot writes a PNG image; give a file name ending in .png, not `{plot}`")
    if selectors:
        chosen, title = select(selectors, runs_dir), " ".join(selectors)
    else:
        name, chosen = latest_batch(runs_dir)
        title = f"batch {name}"
    if not chosen:
        raise UsageError("no runs to compare")
    comparison = build(chosen, title=f"{title}: {len(chosen)} run{'s' if len(chosen) != 1 else ''}",
                       metric=metric, sort=sort)
    if output_format == "table":
        render_table(console, comparison)
    else:
        sys.stdout.write(renderers[output_format](comparison))
    if plot is not None:
        from dltrain.views.curves import plot_curves
        plot_curves(comparison, plot, log_y)
        print(f"learning curves: {plot}", file=sys.stderr)
