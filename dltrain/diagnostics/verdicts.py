"""Plain-language verdicts on diagnostics records, each with the numbers behind it.

A check reads one record (a line of diagnostics.jsonl, or the initialization check of a recipe)
and returns a Finding or None. The thresholds are deliberately coarse: they flag the textbook
failures (Glorot & Bengio 2010; He et al. 2015), not ordinary layer-to-layer variation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

# Healthy initializations measured on digits (He/ReLU up to 10 layers, Xavier/tanh 20 layers, GELU 20
# layers) stay within 4x from layer to layer; a 20-layer sigmoid net with standard-normal weights
# falls 47-106x (seeds 0-3), with Xavier weights 1e11x.
VANISHING_FOLD = 20.0  # a deeper layer's gradient norm this many times layer 1's
EXPLODING_FOLD = 20.0  # layer 1's gradient norm this many times a deeper layer's
SIGNAL_FOLD = 100.0  # activation std grows or shrinks this much from the first to the last activation
GROWTH_FOLD = 1000.0  # total gradient norm grew this much between the first and the last record
DEAD_FRACTION = 0.25  # of a layer's ReLUs that output zero for every sample of the batch
SATURATED_FRACTION = 0.25  # of a layer's sigmoid/tanh outputs within 0.01 of a bound
GATE_FRACTION = 0.5  # of an LSTM/GRU gate's values within 0.01 of a bound


@dataclass
class Finding:
    problem: str  # "vanishing gradients", "exploding gradients", "dead units", "saturated units", ...
    evidence: str

    def __str__(self) -> str:
        return f"{self.problem}: {self.evidence}"


def number(value) -> float | None:
    """Record values are floats, or "nan"/"inf" strings (JSON has neither)."""
    if value is None:
        return None
    return float(value)


def when(record: dict) -> str:
    phase = record.get("phase")
    if phase == "init" or (record.get("kind") == "probe" and record.get("step") == 0):
        return "at initialization"
    if phase == "end":
        return f"at the end of training (epoch {record['epoch']}, step {record['step']})"
    return f"at epoch {record['epoch']} (step {record['step']})"


def grad_profile(record: dict) -> list[tuple[int, str, float]]:
    return [(layer["index"], layer["name"], number(layer["grad_norm"]))
            for layer in record["layers"] if layer.get("grad_norm") is not None]


def fold(ratio: float) -> str:
    if math.isinf(ratio):
        return "infinitely"
    return f"{ratio:.0f}" if ratio < 1000 else f"{ratio:.0e}".replace("e+0", "e").replace("e+", "e")


CHECKS: list[Callable[[dict], Finding | None]] = []


def check(fn):
    CHECKS.append(fn)
    return fn


@check
def nonfinite_gradients(record: dict) -> Finding | None:
    bad = [(i, name, g) for i, name, g in grad_profile(record) if not math.isfinite(g)]
    if not bad:
        return None
    i, name, g = bad[0]
    return Finding("exploding gradients", f"layer {i} ({name}) has a non-finite gradient norm ({g}) {when(record)}")


@check
def vanishing(record: dict) -> Finding | None:
    profile = [p for p in grad_profile(record) if math.isfinite(p[2])]
    if len(profile) < 2:
        return None
    first_index, first_name, first = profile[0]
    top_index, top_name, top = max(profile[1:], key=lambda p: p[2])
    if top == 0 or (first > 0 and top / first < VANISHING_FOLD):
        return None
    if first == 0:
        return Finding("vanishing gradients", f"layer {first_index} ({first_name}) gets no gradient at all {when(record)}, "
                                              f"while layer {top_index} gets {top:.2e}")
    return Finding("vanishing gradients",
                   f"the gradient norm falls {fold(top / first)}-fold from layer {top_index} to layer {first_index} "
                   f"{when(record)} (layer {top_index}: {top:.2e}, layer {first_index}: {first:.2e}; "
                   f"{per_layer(top / first, top_index - first_index)})")


@check
def exploding(record: dict) -> Finding | None:
    profile = [p for p in grad_profile(record) if math.isfinite(p[2])]
    if len(profile) < 2:
        return None
    first_index, _, first = profile[0]
    low_index, _, low = min(profile[1:], key=lambda p: p[2])
    if first == 0 or (low > 0 and first / low < EXPLODING_FOLD):
        return None
    ratio = first / low if low else math.inf
    return Finding("exploding gradients",
                   f"the gradient norm grows {fold(ratio)}-fold from layer {low_index} "
                   f"to layer {first_index} {when(record)} (layer {low_index}: {low:.2e}, "
                   f"layer {first_index}: {first:.2e}; {per_layer(ratio, low_index - first_index)})")


def per_layer(ratio: float, layers: int) -> str:
    if not math.isfinite(ratio) or layers < 1:
        return "no signal at all"
    return f"about {ratio ** (1 / layers):.2f}x per layer"


@check
def signal_scale(record: dict) -> Finding | None:
    """The forward signal: activation std exploding or dying out with depth."""
    rows = [a for a in record["activations"] if a.get("std") is not None and math.isfinite(number(a["std"]))]
    if len(rows) < 2:
        return None
    first, last = rows[0], rows[-1]
    start, end = number(first["std"]), number(last["std"])
    if start > 0 and end / start >= SIGNAL_FOLD:
        return Finding("exploding activations", f"the activation std grows {fold(end / start)}-fold from layer "
                                                f"{first['index']} ({start:.2e}) to layer {last['index']} ({end:.2e}) "
                                                f"{when(record)}: the weights are too large for this depth")
    if end == 0 or (start > 0 and start / end >= SIGNAL_FOLD):
        return Finding("vanishing activations", f"the activation std shrinks {fold(start / end if end else math.inf)}-fold "
                                                f"from layer {first['index']} ({start:.2e}) to layer {last['index']} "
                                                f"({end:.2e}) {when(record)}: the weights are too small for this depth")
    return None


def _worst(record: dict, key: str) -> tuple[dict | None, list[dict]]:
    rows = [a for a in record["activations"] if a.get(key) is not None]
    if not rows:
        return None, []
    return max(rows, key=lambda a: number(a[key])), rows


@check
def dead_units(record: dict) -> Finding | None:
    worst, rows = _worst(record, "dead")
    if worst is None or number(worst["dead"]) < DEAD_FRACTION:
        return None
    others = sum(1 for a in rows if a is not worst and number(a["dead"]) >= DEAD_FRACTION)
    more = f"; {others} more layer{'s' if others != 1 else ''} above {DEAD_FRACTION:.0%}" if others else ""
    return Finding("dead units", f"{number(worst['dead']):.0%} of layer {worst['index']}'s {worst['type']}s never fire "
                                 f"on the batch {when(record)} ({worst['name']}){more}")


@check
def saturated_units(record: dict) -> Finding | None:
    worst, rows = _worst(record, "saturated")
    if worst is None or number(worst["saturated"]) < SATURATED_FRACTION:
        return None
    bounds = "0 or 1" if worst["type"] == "Sigmoid" else "-1 or 1"
    others = sum(1 for a in rows if a is not worst and number(a["saturated"]) >= SATURATED_FRACTION)
    more = f"; {others} more layer{'s' if others != 1 else ''} above {SATURATED_FRACTION:.0%}" if others else ""
    return Finding("saturated units", f"{number(worst['saturated']):.0%} of layer {worst['index']}'s {worst['type']} "
                                      f"outputs are within 0.01 of {bounds} {when(record)} ({worst['name']}){more}")


def _worst_gate(record: dict) -> tuple[dict, str, float] | None:
    worst = None
    for layer in record["layers"]:
        for key, value in layer.items():
            if key.startswith("gate_") and (worst is None or number(value) > worst[2]):
                worst = (layer, key[5:], number(value))
    return worst


@check
def saturated_gates(record: dict) -> Finding | None:
    worst = _worst_gate(record)
    if worst is None or worst[2] < GATE_FRACTION:
        return None
    layer, gate, value = worst
    return Finding("saturated gates", f"{value:.0%} of the {gate} gate's values in layer {layer['index']} "
                                      f"({layer['name']}, {layer['type']}) are within 0.01 of their bounds {when(record)}")


def judge(record: dict) -> list[Finding]:
    """Every problem found in one record; a single `healthy` finding when there is none."""
    findings = [f for f in (c(record) for c in CHECKS) if f is not None]
    if any(f.problem == "exploding gradients" for f in findings):
        findings = [f for f in findings if f.problem != "vanishing gradients" or "no gradient" in f.evidence]
    return findings or [healthy(record)]


def healthy(record: dict) -> Finding:
    parts = []
    profile = [p for p in grad_profile(record) if p[2] > 0]
    if len(profile) >= 2:
        high, low = max(p[2] for p in profile), min(p[2] for p in profile)
        parts.append(f"gradient norms stay within {high / low:.1f}x of each other across {len(profile)} layers "
                     f"(layer 1: {profile[0][2]:.2e}, layer {profile[-1][0]}: {profile[-1][2]:.2e})")
    worst, _ = _worst(record, "dead")
    if worst is not None:
        parts.append(f"at most {number(worst['dead']):.0%} dead ReLUs (layer {worst['index']})")
    worst, _ = _worst(record, "saturated")
    if worst is not None:
        parts.append(f"at most {number(worst['saturated']):.0%} saturated outputs (layer {worst['index']})")
    gate = _worst_gate(record)
    if gate is not None:
        layer, name, value = gate
        parts.append(f"at most {value:.0%} saturated gate values ({name} gate, layer {layer['index']})")
    return Finding("healthy", "; ".join(parts) + f" {when(record)}" if parts else f"nothing to flag {when(record)}")


def total_norms(records: list[dict]) -> list[tuple[int, float]]:
    """(step, total gradient norm) of each record that has gradient norms."""
    totals = []
    for record in records:
        norms = [number(layer["grad_norm"]) for layer in record["layers"] if layer.get("grad_norm") is not None]
        if norms:
            totals.append((record["step"], math.sqrt(sum(n * n for n in norms))))
    return totals


def growth(history: list[tuple[int, float]], span: str = "") -> Finding | None:
    """Across a run: did the total gradient norm blow up between the first and the last (step, norm)?"""
    history = [(step, norm) for step, norm in history if norm is not None]
    if len(history) < 2:
        return None
    (first, start), (last, end) = history[0], history[-1]
    if start > 0 and (not math.isfinite(end) or end / start >= GROWTH_FOLD):
        return Finding("exploding gradients", f"the total gradient norm grew {fold(end / start)}-fold from "
                                              f"{start:.2e} (step {first}) to {end:.2e} (step {last}){span}")
    return None
