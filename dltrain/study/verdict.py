"""Judging a claim on measured numbers: confirmed, not confirmed, or inconclusive, with the reason.

- beats (A better than B on M): Welch's t-test over the seeds (scipy.stats.ttest_ind,
  equal_var=False, two-sided, the test `dltrain compare` uses). Confirmed when A's mean is better
  and p < alpha; not confirmed when B's is better and p < alpha; inconclusive otherwise (the
  difference is within the seed spread, or too few finished seeds for a t-test). Only finished
  runs' metrics count; an arm left with fewer than two because its runs diverged or failed loses
  to one whose every run finished.
- within (every seed of A measures M in [low, high]): confirmed when every seed is inside; not
  confirmed when the mean is outside; inconclusive when the mean is inside but a seed is not.
- diverges (every seed of A diverges, or none): confirmed when all runs agree with the claim, not
  confirmed when none does, inconclusive when the seeds disagree.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from dltrain.core.status import RunStatus
from dltrain.study import quantities

CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE = "confirmed", "not confirmed", "inconclusive"


@dataclass
class ArmResult:
    """One arm's runs: their statuses and, per quantity, one value per run (None: not measured)."""

    name: str
    statuses: list[str]
    values: dict[str, list[float | None]] = field(default_factory=dict)

    def finite(self, quantity: str) -> list[float]:
        return [v for v in self.values.get(quantity, []) if v is not None and math.isfinite(v)]

    def mean(self, quantity: str) -> float | None:
        vals = self.finite(quantity)
        return sum(vals) / len(vals) if vals else None

    def std(self, quantity: str) -> float | None:
        vals = self.finite(quantity)
        return statistics.stdev(vals) if len(vals) >= 2 else None  # ddof=1

    @property
    def diverged(self) -> int:
        return sum(RunStatus.read(s) is RunStatus.DIVERGED for s in self.statuses)

    @property
    def unfinished(self) -> int:
        """Runs that did not end as planned (diverged, failed, interrupted): their metrics are not counted."""
        return sum(not RunStatus.read(s).finished for s in self.statuses)


@dataclass
class Verdict:
    claim: str  # the claim in words
    verdict: str
    reason: str
    p_value: float | None = None


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4f}".rstrip("0").rstrip(".")


def describe(claim) -> str:
    body = claim.body
    if claim.beats:
        better = "higher" if quantities.mode(body.metric) == "max" else "lower"
        return f"`{body.arm}` beats `{body.over}` on {body.metric} ({better} is better)"
    if claim.within:
        return f"`{body.arm}` keeps {body.metric} within [{fmt(body.range[0])}, {fmt(body.range[1])}]"
    return f"`{body.arm}` {'diverges' if body.expected else 'does not diverge'} (every seed)"


def judge(claim, arms: dict[str, ArmResult]) -> Verdict:
    text = describe(claim)
    if claim.beats:
        return Verdict(text, *_beats(claim.beats, arms[claim.beats.arm], arms[claim.beats.over]))
    if claim.within:
        return Verdict(text, *_within(claim.within, arms[claim.within.arm]))
    return Verdict(text, *_diverges(claim.diverges, arms[claim.diverges.arm]))


def _beats(body, a: ArmResult, b: ArmResult) -> tuple:
    xs, ys = a.finite(body.metric), b.finite(body.metric)
    if not xs and not ys:
        return INCONCLUSIVE, f"no run of either arm measured {body.metric}", None
    for winner, loser, verdict in ((a, b, CONFIRMED), (b, a, NOT_CONFIRMED)):
        kept, lost = winner.finite(body.metric), loser.finite(body.metric)
        if loser.unfinished and not winner.unfinished and len(lost) < 2 <= len(kept):
            return verdict, (f"`{loser.name}` ended {_ended(loser)}, leaving {len(lost)} measured seed(s); "
                             f"every run of `{winner.name}` finished"), None
    if len(xs) < 2 or len(ys) < 2:
        return INCONCLUSIVE, f"too few finished seeds for a t-test (n={len(xs)} and {len(ys)}; at least 2 each)", None
    sign = 1 if quantities.mode(body.metric) == "max" else -1
    delta = sum(xs) / len(xs) - sum(ys) / len(ys)
    import warnings

    from scipy.stats import ttest_ind
    with warnings.catch_warnings():  # near-identical seeds: scipy warns, the p-value still says it
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(xs, ys, equal_var=False).pvalue)
    if not math.isfinite(p):
        if delta == 0:
            return INCONCLUSIVE, "both arms measured the same value on every seed", None
        return (CONFIRMED if sign * delta > 0 else NOT_CONFIRMED), \
            f"no spread within either arm; the means differ by {fmt(delta)}", None
    ahead = a.name if sign * delta > 0 else b.name
    spread = f"mean difference {fmt(delta)}, p = {p:.3g}, n = {len(xs)} and {len(ys)}"
    if p < body.alpha:
        return (CONFIRMED if ahead == a.name else NOT_CONFIRMED), f"`{ahead}` is ahead: {spread} < {body.alpha:g}", p
    return INCONCLUSIVE, (f"`{ahead}` is ahead, but within the seed spread: {spread} >= {body.alpha:g}; "
                          "more seeds, or a larger effect, would decide it"), p


def _within(body, a: ArmResult) -> tuple:
    vals = a.finite(body.metric)
    if not vals:
        return INCONCLUSIVE, f"no run of `{a.name}` measured {body.metric} ({_ended(a)})", None
    low, high = body.range
    outside = [v for v in vals if not low <= v <= high]
    mean = sum(vals) / len(vals)
    shown = ", ".join(fmt(v) for v in vals)
    if not outside:
        return CONFIRMED, f"all {len(vals)} seeds inside: {shown}", None
    if not low <= mean <= high:
        return NOT_CONFIRMED, f"the mean {fmt(mean)} is outside (seeds: {shown})", None
    return INCONCLUSIVE, f"the mean {fmt(mean)} is inside but {len(outside)} of {len(vals)} seeds are not ({shown})", None


def _diverges(body, a: ArmResult) -> tuple:
    n, k = len(a.statuses), a.diverged
    if n == 0:
        return INCONCLUSIVE, "no runs", None
    agree = k if body.expected else n - k
    text = f"{k} of {n} seeds diverged"
    if agree == n:
        return CONFIRMED, text, None
    if agree == 0:
        return NOT_CONFIRMED, text, None
    return INCONCLUSIVE, text + ": the seeds disagree", None


def _ended(arm: ArmResult) -> str:
    counts = {s: arm.statuses.count(s) for s in dict.fromkeys(arm.statuses)}
    return ", ".join(f"{c} {s}" for s, c in counts.items()) or "no runs"
