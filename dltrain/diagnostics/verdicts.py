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
# Total gradient norm over total weight norm at initialization: 0.03-0.6 for the recipes in recipes/
# (plain, conv, residual, recurrent, regression); 26 for a 30-block residual MLP that trains well; 7.5e5
# for a 10-layer ReLU net with N(0, 1) weights, which diverges at step 2.
SCALE_FOLD = 1000.0  # one step at lr 1e-3 would move the weights by more than their own norm
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


@dataclass
class Profile:
    """The backward signal by depth, as a verdict reads it: `points` are (depth, value), nearest the input first."""

    points: list[tuple[int, float]]
    unit: str  # "layer" or "block"
    what: str
    names: dict[int, str]
    many: str  # `what` for the healthy summary: "<many> stay within 2x of each other"  # depth -> module name

    def label(self, index: int) -> str:
        return f"{self.unit} {index} ({self.names[index]})"


def backward_profile(record: dict) -> Profile:
    """Plain stacks: each layer's weight-gradient norm. Skip-connected models: the gradient reaching
    each residual block's input times the stream's norm there. The stream grows block by block (each
    adds to it) while its gradient shrinks towards the output, so neither alone says whether a block
    gets a usable signal; their product is the loss's response to a relative change of the stream, and
    a dead branch's near-zero weight gradient says nothing about the signal flowing past it."""
    if "blocks" in record:
        points = [(b["index"], number(b["input_grad_norm"]) * number(b["input_norm"])) for b in record["blocks"]
                  if b.get("input_grad_norm") is not None and b.get("input_norm") is not None]
        return Profile([p for p in points if math.isfinite(p[1])], "block",
                       "the residual stream's gradient times its norm (at each block's input)",
                       {b["index"]: b["name"] for b in record["blocks"]},
                       "the residual stream's gradient-times-norm values")
    profile = grad_profile(record)
    return Profile([(i, g) for i, _, g in profile if math.isfinite(g)], "layer", "the gradient norm",
                   {i: name for i, name, _ in profile}, "gradient norms")


def _depth_change(record: dict, falls: bool) -> tuple[Profile, tuple[int, float], tuple[int, float]] | None:
    """The first point and the deeper point furthest above it (falls) or below it (rises), when the
    ratio reaches its fold; None otherwise."""
    profile = backward_profile(record)
    if len(profile.points) < 2:
        return None
    first = profile.points[0]
    other = (max if falls else min)(profile.points[1:], key=lambda p: p[1])
    high, low = (other[1], first[1]) if falls else (first[1], other[1])
    if high == 0 or (low > 0 and high / low < (VANISHING_FOLD if falls else EXPLODING_FOLD)):
        return None
    return profile, first, other


@check
def vanishing(record: dict) -> Finding | None:
    found = _depth_change(record, falls=True)
    if found is None:
        return None
    profile, (first_index, first), (top_index, top) = found
    unit = profile.unit
    if first == 0:
        return Finding("vanishing gradients", f"{profile.label(first_index)} gets no gradient at all {when(record)}, "
                                              f"while {unit} {top_index} gets {top:.2e} ({profile.what})")
    return Finding("vanishing gradients",
                   f"{profile.what} falls {fold(top / first)}-fold from {unit} {top_index} to {unit} {first_index} "
                   f"{when(record)} ({unit} {top_index}: {top:.2e}, {unit} {first_index}: {first:.2e}; "
                   f"{per_layer(top / first, top_index - first_index, unit)})")


@check
def exploding(record: dict) -> Finding | None:
    found = _depth_change(record, falls=False)
    if found is None:
        return None
    profile, (first_index, first), (low_index, low) = found
    unit = profile.unit
    ratio = first / low if low else math.inf
    return Finding("exploding gradients",
                   f"{profile.what} grows {fold(ratio)}-fold from {unit} {low_index} to {unit} {first_index} "
                   f"{when(record)} ({unit} {low_index}: {low:.2e}, {unit} {first_index}: {first:.2e}; "
                   f"{per_layer(ratio, low_index - first_index, unit)})")


@check
def gradient_scale(record: dict) -> Finding | None:
    """Absolute scale: a blow-up that is equal in every layer passes every ratio test above."""
    norms = [(number(layer["grad_norm"]), number(layer["weight_norm"])) for layer in record["layers"]
             if layer.get("grad_norm") is not None and layer.get("weight_norm") is not None]
    gradient = math.sqrt(sum(g * g for g, _ in norms))
    weights = math.sqrt(sum(w * w for _, w in norms))
    if not norms or not math.isfinite(gradient) or weights == 0 or gradient / weights < SCALE_FOLD:
        return None
    ratio = gradient / weights
    return Finding("exploding gradients",
                   f"the total gradient norm ({gradient:.2e}) is {ratio:.2g} times the weights' norm ({weights:.2e}) "
                   f"{when(record)}: a gradient-descent step at lr 0.001 would change the weights by {ratio / 1000:.3g} "
                   f"times their own size (the loss is {loss_text(record)})")


def loss_text(record: dict) -> str:
    loss = record.get("loss")
    return "not recorded" if loss is None else f"{number(loss):.3g}"


def per_layer(ratio: float, layers: int, unit: str = "layer") -> str:
    if not math.isfinite(ratio) or layers < 1:
        return "no signal at all"
    return f"about {ratio ** (1 / layers):.2f}x per {unit}"


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
    unit = "block" if "branch_of" in worst else "layer"
    more = f"; {others} more {unit}{'s' if others != 1 else ''} above {DEAD_FRACTION:.0%}" if others else ""
    share = f"{number(worst['dead']):.0%}"
    if "branch_of" in worst:  # on a residual block's branch: the stream flows past it
        return Finding("dead branches", f"{share} of block {worst['branch_of']}'s {worst['type']}s never fire on the "
                                        f"batch {when(record)} ({worst['name']}): that branch adds little to the "
                                        f"residual stream and its dead units' weights get no gradient, while the skip "
                                        f"connection still carries the signal past it{more}")
    return Finding("dead units", f"{share} of layer {worst['index']}'s {worst['type']}s never fire "
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
    profile = backward_profile(record)
    points = [p for p in profile.points if p[1] > 0]
    if len(points) >= 2:
        high, low = max(p[1] for p in points), min(p[1] for p in points)
        (first, start), (last, end) = points[0], points[-1]
        parts.append(f"{profile.many} stay within {high / low:.1f}x of each other across {len(points)} {profile.unit}s "
                     f"({profile.unit} {first}: {start:.2e}, {profile.unit} {last}: {end:.2e})")
    stream = [number(b["input_norm"]) for b in record.get("blocks", []) if b.get("input_norm") is not None]
    if len(stream) >= 2:
        parts.append(f"the stream's norm goes from {stream[0]:.2g} to {stream[-1]:.2g}")
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
