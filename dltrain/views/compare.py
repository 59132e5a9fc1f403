"""`dltrain compare`: runs side by side, grouped by configuration, with a significance test.

The columns are the recipe keys that differ between the compared runs, then the metrics. Runs
whose recipes differ only in `seed` form one group: mean ± sample standard deviation (ddof=1)
over its finished runs, and n. Runs that did not finish (diverged, failed, interrupted, still
running) each get a row of their own, marked, and are never pooled into a group's statistics.
With two or more groups, each group is tested against the best one with Welch's t-test
(scipy.stats.ttest_ind_from_stats, equal_var=False, two-sided,
on each group's mean and sample std).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dltrain.core.errors import UsageError, did_you_mean
from dltrain.core.metrics import METRICS, TRAIN_EVAL, base_metric, default_mode, split_of
from dltrain.rundir.reader import Run, finite, flatten

GROUPING_KEY = "seed"  # runs that differ only here are repeats of one configuration
METRIC_COLUMNS = ("best", "final", "test")  # quantities of the compared metric
OTHER_COLUMNS = ("epochs", "time", "params")
SORTABLE = METRIC_COLUMNS + OTHER_COLUMNS
TEST_NAME = "Welch's t-test (scipy.stats.ttest_ind_from_stats, equal_var=False, two-sided)"
MARKERS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))


@dataclass
class Row:
    """A group of finished runs with one configuration, or one run that did not finish."""

    config: dict[str, Any]  # differing key -> value
    runs: list[Run]
    complete: bool
    values: dict[str, list[float]] = field(default_factory=dict)  # column -> one value per run
    p_value: float | None = None
    marker: str = ""

    @property
    def n(self) -> int:
        return len(self.runs)

    def mean(self, column: str) -> float | None:
        vals = [v for v in self.values.get(column, []) if finite(v)]
        return sum(vals) / len(vals) if vals else None

    def std(self, column: str) -> float | None:
        """Sample standard deviation (ddof=1): the spread of seeds, not of this particular set."""
        vals = [v for v in self.values.get(column, []) if finite(v)]
        return statistics.stdev(vals) if len(vals) >= 2 else None  # ddof=1

    @property
    def statuses(self) -> Counter:
        return Counter(r.status for r in self.runs)

    @property
    def ended(self) -> str:
        if not self.complete:
            run = self.runs[0]
            reason = run.info.get("stop_reason") or "no stop reason recorded"
            return reason if reason.startswith(run.status) else f"{run.status}: {reason}"
        return ", ".join(s if len(self.statuses) == 1 else f"{s} {c}" for s, c in sorted(self.statuses.items()))


@dataclass
class Comparison:
    title: str
    keys: list[str]  # differing recipe keys, dotted
    metric: str  # base name: loss, accuracy, mae, ...
    split: str  # val, or train when the runs have no validation split
    mode: str  # min or max: which way is better for the metric
    sort: str
    tested: str  # the column the significance test is on
    rows: list[Row]

    def header(self, column: str) -> str:
        return {"best": f"best {self.split}_{self.metric}", "final": f"final {self.split}_{self.metric}",
                "test": f"test_{self.metric}", "epochs": "epochs", "time": "time (s)", "params": "params"}[column]

    def field(self, column: str) -> str:
        """The header as a machine-friendly name (CSV columns)."""
        return {"time": "time_s"}.get(column, self.header(column).replace(" ", "_"))

    @property
    def groups(self) -> list[Row]:
        return [r for r in self.rows if r.complete]

    def footnote(self) -> str:
        if len(self.groups) < 2:
            n = len(self.groups)
            return f"{n} group{'s' if n != 1 else ''} of finished runs: no significance test"
        return (f"p: {TEST_NAME} of `{self.header(self.tested)}` against the best group "
                f"(*** p<0.001, ** p<0.01, * p<0.05, ns: not significant; no correction for multiple comparisons)")


def differing_keys(runs: list[Run]) -> list[str]:
    """Recipe keys (dotted) somebody varied, seed excluded, in recipe order.

    A key whose value is not the same in every run counts, unless it is a parameter of a component
    that was itself swapped and it never differs between runs that use the same component: with
    adam vs sgd, `optimizer.betas` differs only because sgd has none, so `optimizer` says it all."""
    flats = [flatten(r.recipe) for r in runs]
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    varied = [k for k in keys if k != GROUPING_KEY and len({_hashable(flat.get(k, _MISSING)) for flat in flats}) > 1]
    return [k for k in varied if not _implied_by_a_component(k, set(varied), flats)]


_MISSING = object()


def _implied_by_a_component(key: str, varied: set[str], flats: list[dict]) -> bool:
    parts = key.split(".")
    for depth in range(1, len(parts)):
        component = ".".join(parts[:depth])
        if component in varied:
            values_by_component: dict[Any, set] = {}
            for flat in flats:
                values_by_component.setdefault(_hashable(flat.get(component, _MISSING)), set()).add(
                    _hashable(flat.get(key, _MISSING)))
            if all(len(values) == 1 for values in values_by_component.values()):
                return True
    return False


def short_names(keys: list[str]) -> dict[str, str]:
    """Each key by its shortest dotted tail that no other key shares: model.init -> init,
    optimizer.lr -> lr, but model.init.mode and schedule.mode keep their parents."""
    names = {}
    for key in keys:
        parts = key.split(".")
        for take in range(1, len(parts) + 1):
            tail = ".".join(parts[-take:])
            if not any(other != key and (other == tail or other.endswith("." + tail)) for other in keys):
                break
        names[key] = tail
    return names


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def choose_metric(runs: list[Run], metric: str | None) -> str:
    """The base metric compared: `--metric` (val_/test_/train_ prefix allowed) or the first run's monitor."""
    recorded = set().union(*(r.recorded_metrics() for r in runs)) & set(METRICS)  # each with its direction
    if metric is None:
        return runs[0].monitor[0].partition("_")[2] or "loss"
    base = base_metric(metric)
    if base not in recorded:
        raise UsageError(f"unknown metric `{metric}`: these runs recorded "
                         f"{', '.join(sorted(recorded)) or 'no metrics'}{did_you_mean(base, recorded)}")
    return base


def run_values(run: Run, metric: str, split: str, mode: str) -> dict[str, float | None]:
    """One run's numbers: best and final value of `split_metric` over epochs, test value, and more."""
    series = [row[f"{split}_{metric}"] for row in run.history if finite(row.get(f"{split}_{metric}"))]
    pick = min if mode == "min" else max
    return {
        "best": pick(series) if series else None,
        "final": series[-1] if series else None,
        "test": run.summary.get("test", {}).get(f"test_{metric}"),
        "epochs": run.epochs_done,
        "time": run.wall_time,
        "params": run.parameters,
    }


def build(runs: list[Run], *, title: str, metric: str | None = None, sort: str | None = None) -> Comparison:
    if not runs:
        raise UsageError("no runs to compare")
    asked = split_of(metric)[0] if metric else None
    metric = choose_metric(runs, metric)
    mode = default_mode(metric)
    if asked in (TRAIN_EVAL, "train"):  # a training split asked by name: `train_loss`, `train_eval_loss`
        split = asked
    else:  # unprefixed, val_ or test_ (test has one number a run, so its best and final are validation's)
        split = "val" if any(f"val_{metric}" in row for r in runs for row in r.history[:1]) else "train"
    keys = differing_keys(runs)
    sort = sort or "best"
    if sort not in SORTABLE and sort not in keys:
        choices = list(SORTABLE) + keys
        raise UsageError(f"cannot sort by `{sort}`{did_you_mean(sort, choices)} (choose from: {', '.join(choices)})")

    grouped: dict[Any, Row] = {}
    rows: list[Row] = []
    for run in sorted(runs, key=lambda r: (r.started, r.name)):
        flat = flatten(run.recipe)
        config = {k: flat.get(k) for k in keys}
        if run.finished:
            key = _hashable({k: v for k, v in flat.items() if k != GROUPING_KEY})
            if key not in grouped:
                grouped[key] = Row(config, [], complete=True)
                rows.append(grouped[key])
            row = grouped[key]
        else:
            row = Row(config, [], complete=False)
            rows.append(row)
        row.runs.append(run)
        for column, value in run_values(run, metric, split, mode).items():
            row.values.setdefault(column, []).append(value)

    comparison = Comparison(title, keys, metric, split, mode, sort,
                            tested=sort if sort in METRIC_COLUMNS else "best", rows=rows)
    _sort(comparison)
    _significance(comparison)
    return comparison


def _sort(c: Comparison) -> None:
    """Finished groups first, best first; then the runs that did not finish."""
    def key(row: Row):
        if c.sort in c.keys:
            return (not row.complete, str(row.config.get(c.sort)))
        value = row.mean(c.sort)
        if value is not None and c.sort in METRIC_COLUMNS and c.mode == "max":
            value = -value
        return (not row.complete, value is None, value if value is not None else 0.0)
    c.rows.sort(key=key)


def _significance(c: Comparison) -> None:
    """Welch's t-test of each finished group against the best one on the tested column."""
    groups = [g for g in c.groups if g.mean(c.tested) is not None]
    if len(groups) < 2:
        return
    pick = min if c.mode == "min" else max
    best = pick(groups, key=lambda g: g.mean(c.tested))
    best.marker = "best"
    reference = _sample(best, c.tested)
    for group in groups:
        if group is best:
            continue
        sample = _sample(group, c.tested)
        if len(sample) < 2 or len(reference) < 2:
            group.marker = "n<2"  # a t-test needs a variance estimate on both sides
            continue
        p = welch_p(sample, reference)
        if p is None:
            group.marker = "n/a"  # both groups have zero spread: the test is undefined
            continue
        group.p_value = p
        group.marker = next((m for limit, m in MARKERS if p < limit), "ns")


def _sample(row: Row, column: str) -> list[float]:
    return [v for v in row.values[column] if finite(v)]


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch p-value from each side's mean and sample std (ddof=1). From the statistics,
    not the raw values: on identical values (a deterministic run repeated) scipy's moment
    calculation warns of precision loss, where the std is simply zero. None when both stds are."""
    from scipy.stats import ttest_ind_from_stats

    def stats(values):
        m = sum(values) / len(values)
        return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)), len(values)

    (ma, sa, na), (mb, sb, nb) = stats(a), stats(b)
    if sa == 0 and sb == 0:
        return None
    p = float(ttest_ind_from_stats(ma, sa, na, mb, sb, nb, equal_var=False).pvalue)
    return p if math.isfinite(p) else None


# ---------------------------------------------------------------------------------------------
# output


def value_text(value: Any) -> str:
    """A recipe value as it would be written in YAML (lists inline), exactly."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return str(value)


def short_value(value: Any) -> str:
    """A recipe value to read, not to parse back: floats to 3 significant digits (a sampled
    learning rate of 0.0031622776601683794 reads 0.00316)."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "[" + ", ".join(short_value(v) for v in value) + "]"
    return value_text(value)


def config_label(c: Comparison, row: Row) -> str:
    """`init=xavier_normal, lr=0.1`: what sets this row apart, by the keys' short names."""
    names = short_names(c.keys)
    return ", ".join(f"{names[k]}={short_value(row.config[k])}" for k in c.keys)


def compared_text(c: Comparison) -> str:
    """What the comparison is about, for titles: `val_loss by init, lr`."""
    varied = ", ".join(short_names(c.keys).values())
    return f"{c.split}_{c.metric}" + (f" by {varied}" if varied else "")


def _format(column: str, value: float | None) -> str:
    if value is None:
        return "—"
    if column == "params":
        return f"{value:,.0f}"
    if column == "epochs":
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    if column == "time":
        return f"{value:.1f}"
    return f"{value:.4f}"


def cell(row: Row, column: str) -> str:
    mean, std = row.mean(column), row.std(column)
    text = _format(column, mean)
    if std is not None and (std > 0 or column in METRIC_COLUMNS):
        text += f" ± {_format(column, std) if column != 'params' else f'{std:,.0f}'}"
    return text


def n_text(row: Row) -> str:
    return str(row.n) if row.complete else f"{row.n} ✗"


def seeds_text(row: Row) -> str:
    return ",".join(str(r.info.get("seed", "?")) for r in row.runs)


def p_text(row: Row) -> str:
    if row.p_value is None:
        return row.marker
    return f"{row.p_value:.3g} {row.marker}"


# Which columns a narrow terminal keeps (0: always), and in which order the others go.
KEEP = {"n": 0, "best": 0, "p vs best": 1, "ended": 2, "test": 3, "epochs": 4, "final": 5, "time": 6,
        "seeds": 7, "params": 8}
ENDED_CUT = 28  # characters of a stop reason on a terminal; whole in `dltrain show` and --format json


def text_rows(c: Comparison, short: bool = False) -> tuple[list[str], list[list[str]]]:
    """Headers and cells shared by the table (short: keys by their short names, numbers short)
    and markdown (full keys, exact values) formats."""
    names = short_names(c.keys) if short else {k: k for k in c.keys}
    show = short_value if short else value_text
    headers = [names[k] for k in c.keys] + ["n", "seeds"] + [c.header(col) for col in SORTABLE] + ["ended"]
    significance = len(c.groups) >= 2
    if significance:
        headers.append("p vs best")
    body = []
    for row in c.rows:
        cells = [show(row.config[k]) for k in c.keys] + [n_text(row), seeds_text(row)] + [cell(row, col) for col in SORTABLE]
        cells.append(row.ended)
        if significance:
            cells.append(p_text(row) if row.complete else "not in stats")
        body.append(cells)
    return headers, body


def notes(c: Comparison) -> list[str]:
    lines = ["mean ± sample std (ddof=1) over the finished runs of each group; n = runs in the group"]
    if any(not r.complete for r in c.rows):
        lines.append("✗ = run did not finish: shown alone, never pooled into a group")
    lines.append(c.footnote())
    return lines


def render_table(console, c: Comparison) -> None:
    from dltrain.views.tables import Column, note, print_table
    headers, body = text_rows(c, short=True)
    columns_of = ["key"] * len(c.keys) + ["n", "seeds"] + list(SORTABLE) + ["ended", "p vs best"]
    columns = [Column(h, keep=KEEP.get(kind, 0), justify="left" if kind in ("key", "ended") else "right",
                      cut_at=ENDED_CUT if kind == "ended" else None)
               for h, kind in zip(headers, columns_of)]
    left_out = print_table(console, columns, body, title=f"{c.title}: {compared_text(c)}",
                           row_styles=[None if row.complete else "yellow" for row in c.rows],
                           left_out_hint="widen the terminal, or --format csv/json")
    if console.is_terminal and "ended" not in left_out and any(len(row.ended) > ENDED_CUT for row in c.rows):
        note(console, "ended: cut to fit; the whole reason is in `dltrain show RUN` and --format json")
    for line in notes(c):
        note(console, line)


def render_markdown(c: Comparison) -> str:
    headers, body = text_rows(c)

    def line(cells):
        return "| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |"

    out = [f"**{c.title}**", "", line(headers), "|" + "|".join("---" for _ in headers) + "|"]
    out += [line(cells) for cells in body]
    out += [""] + [f"_{n}_" for n in notes(c)]
    return "\n".join(out) + "\n"


def records(c: Comparison) -> list[dict]:
    """One plain dict per row: what the CSV and JSON formats hold."""
    out = []
    for row in c.rows:
        record: dict[str, Any] = {"config": {k: row.config[k] for k in c.keys}, "n": row.n,
                                  "complete": row.complete, "status": dict(row.statuses)}
        for column in SORTABLE:
            record[column] = {"name": c.header(column), "mean": row.mean(column), "std": row.std(column),
                              "values": [v if finite(v) else None for v in row.values.get(column, [])]}
        record["p_value"] = row.p_value
        record["significance"] = row.marker or None
        record["runs"] = [r.name for r in row.runs]
        record["seeds"] = [r.info.get("seed") for r in row.runs]
        record["stop_reasons"] = [r.info.get("stop_reason") for r in row.runs]
        out.append(record)
    return out


def render_json(c: Comparison) -> str:
    import json
    doc = {"title": c.title, "metric": c.metric, "split": c.split, "mode": c.mode, "sort": c.sort,
           "keys": c.keys, "test": TEST_NAME if len(c.groups) >= 2 else None, "tested": c.header(c.tested),
           "std": "sample standard deviation (ddof=1)", "rows": records(c)}
    return json.dumps(doc, indent=2, default=_json_default, allow_nan=False) + "\n"


def _json_default(value: Any) -> Any:
    return str(value)


def render_csv(c: Comparison) -> str:
    import csv
    import io
    columns = list(c.keys) + ["n", "complete", "status"]
    for column in SORTABLE:
        columns += [f"{c.field(column)}_mean", f"{c.field(column)}_std"]
    columns += ["p_value", "significance", "runs", "seeds"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row, record in zip(c.rows, records(c)):
        cells = [value_text(row.config[k]) for k in c.keys]
        cells += [row.n, "yes" if row.complete else "no", row.ended]
        for column in SORTABLE:
            cells += [_csv_number(record[column]["mean"]), _csv_number(record[column]["std"])]
        cells += [_csv_number(row.p_value), row.marker, " ".join(record["runs"]),
                  " ".join(str(s) for s in record["seeds"])]
        writer.writerow(cells)
    return buffer.getvalue()


def _csv_number(value: float | None) -> str:
    return "" if value is None else repr(value)
