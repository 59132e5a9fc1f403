"""The numbers a study measures on each run, by name.

Metric quantities come from the run's records: `test_<m>` (summary.json), `best_val_<m>`,
`final_val_<m>`, `final_train_<m>` (metrics.csv; best = the best epoch's value), `epochs`, `time`.
Collected quantities need more than the records:
- `grad_ratio`: layer 1's gradient norm over the last layer's at initialization (the `init` probe
  of diagnostics.jsonl); far below 1 is vanishing, far above exploding.
- `act_std_ratio`: the last activation's std over the first activation's at initialization; near
  1 means the signal keeps its scale through depth (self-normalization).
- `sparsity`: the fraction of weight-matrix entries with |w| < SPARSE_BELOW in the final weights.
- `sharpness`: how much the training loss rises a small step away from the final weights, along
  filter-normalized random directions (Li et al. 2018), averaged over SHARPNESS_DIRECTIONS.
"""

from __future__ import annotations

import math

from dltrain.core.metrics import DIRECTION, METRICS
from dltrain.rundir import layout
from dltrain.rundir.reader import Run, finite

SPARSE_BELOW = 1e-3
SHARPNESS_SPAN = 0.25  # in units of the weights' own (filter) norms
SHARPNESS_DIRECTIONS = 4
SHARPNESS_SAMPLES = 512
BASE_METRICS = METRICS
METRIC_FORMS = ("test", "best_val", "final_val", "final_train")
COLLECTED = {  # name -> which way is better, where that has a meaning
    "grad_ratio": "max", "act_std_ratio": "max", "sparsity": "max", "sharpness": "min",
}
OTHER = {"epochs": "min", "time": "min"}
DEPTH_QUANTITIES = ("grad_ratio", "act_std_ratio")  # need log.diagnostics: true


def known() -> list[str]:
    return [f"{form}_{m}" for form in METRIC_FORMS for m in BASE_METRICS] + list(OTHER) + list(COLLECTED)


def mode(name: str) -> str:
    """`max` when a larger value is better (accuracy, sparsity), else `min`."""
    return COLLECTED.get(name) or OTHER.get(name) or DIRECTION[base_metric(name)]


def base_metric(name: str) -> str | None:
    """`best_val_accuracy` -> `accuracy`; None for collected quantities and epochs/time."""
    for form in METRIC_FORMS:
        if name.startswith(form + "_"):
            return name.removeprefix(form + "_")
    return None


def measure(run: Run, name: str) -> float | None:
    """One quantity of one run; None where the run did not record it (it diverged, say)."""
    if name == "epochs":
        return float(run.epochs_done)
    if name == "time":
        return run.wall_time
    if name in ("grad_ratio", "act_std_ratio"):
        return _depth_ratio(run, name)
    if name == "sparsity":
        return _sparsity(run)
    if name == "sharpness":
        return _sharpness(run)
    metric = base_metric(name)
    if name.startswith("test_"):
        value = run.summary.get("test", {}).get(name)
        return value if finite(value) else None
    split = "train" if name.startswith("final_train_") else "val"
    series = [row[f"{split}_{metric}"] for row in run.history if finite(row.get(f"{split}_{metric}"))]
    if not series:
        return None
    if name.startswith("best_"):
        return (max if DIRECTION[metric] == "max" else min)(series)
    return series[-1]


def init_probe(run: Run) -> dict | None:
    from dltrain.rundir.writer import read_jsonl
    path = run.path / layout.DIAGNOSTICS
    if not path.is_file():
        return None
    return next((r for r in read_jsonl(path) if r.get("kind") == "probe" and r.get("phase") == "init"), None)


def depth_profile(run: Run) -> tuple[list[float], list[float]]:
    """Gradient norm per layer and activation std per activation, at initialization."""
    record = init_probe(run) or {}
    grads = [layer.get("grad_norm") for layer in record.get("layers", [])]
    stds = [a.get("std") for a in record.get("activations", [])]
    return [g if finite(g) else math.nan for g in grads], [s if finite(s) else math.nan for s in stds]


def _depth_ratio(run: Run, name: str) -> float | None:
    grads, stds = depth_profile(run)
    values = grads if name == "grad_ratio" else stds
    if len(values) < 2 or not all(map(math.isfinite, (values[0], values[-1]))) or values[0] == 0:
        return None
    return values[0] / values[-1] if name == "grad_ratio" else values[-1] / values[0]


def final_weights(run: Run) -> dict | None:
    from dltrain.rundir.writer import load_checkpoint
    path = run.checkpoints / layout.LAST
    if not path.is_file():
        return None
    return load_checkpoint(path, map_location="cpu")["learner"]["model"]


def _sparsity(run: Run) -> float | None:
    state = final_weights(run)
    if state is None:
        return None
    matrices = [t for t in state.values() if getattr(t, "ndim", 0) >= 2 and t.is_floating_point()]
    total = sum(t.numel() for t in matrices)
    return sum(int((t.abs() < SPARSE_BELOW).sum()) for t in matrices) / total if total else None


def _sharpness(run: Run) -> float | None:
    import torch

    from dltrain.builder.objects import build
    from dltrain.diagnostics.landscape import landscape
    from dltrain.recipe.load import load_recipe

    state = final_weights(run)
    if state is None:
        return None
    built = build(load_recipe(run.recipe_file).model_copy(update={"device": "cpu"}))
    built.model.load_state_dict(state)
    loader = built.loaders["train"]
    take = torch.randperm(loader.n, generator=torch.Generator().manual_seed(0))[:SHARPNESS_SAMPLES]
    x, y = loader.x[take.to(loader.x.device)], loader.y[take.to(loader.y.device)]
    rises = []
    for seed in range(SHARPNESS_DIRECTIONS):
        result = landscape(built.model, built.loss_fn, x, y, points=3, span=SHARPNESS_SPAN, seed=seed)
        ends = (result["loss_1d"][0] + result["loss_1d"][-1]) / 2
        rises.append(ends - result["center_loss"])
    return sum(rises) / len(rises) if all(map(math.isfinite, rises)) else None


def needs_depth(names) -> bool:
    return any(n in DEPTH_QUANTITIES for n in names)


def is_known(name: str) -> bool:
    return name in known()
