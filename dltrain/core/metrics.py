"""Metric names a run records, and which way is better for each (as a Keras monitor knows its metric's
direction): the direction comes from this table, never from the look of a name."""

from __future__ import annotations

from dltrain.core.errors import did_you_mean

# every metric a run may record, in the order tables show them, with the direction that is better
DIRECTION = {"loss": "min", "accuracy": "max", "mae": "min", "rmse": "min"}
METRICS = tuple(DIRECTION)
CLASSIFICATION_METRICS = ("loss", "accuracy")
REGRESSION_METRICS = ("loss", "mae", "rmse")
SPLITS = ("train", "val")  # recorded every epoch, as `train_loss`, `val_accuracy`, ...; `test_` once at the end
EPOCH_METRICS = tuple(f"{split}_{metric}" for split in SPLITS for metric in METRICS)
MONITORABLE = sorted(EPOCH_METRICS)


TRAIN_EVAL = "train_eval"  # with log.train_eval: the training split evaluated in eval mode each epoch
PREFIXES = (TRAIN_EVAL, *SPLITS, "test")  # longest first: `train_eval_loss` is not `train_` + `eval_loss`


def split_of(name: str) -> tuple[str | None, str]:
    """`val_accuracy` -> ("val", "accuracy"), `train_eval_loss` -> ("train_eval", "loss"), `loss` -> (None, "loss")."""
    for prefix in PREFIXES:
        if name.startswith(prefix + "_") and len(name) > len(prefix) + 1:
            return prefix, name[len(prefix) + 1:]
    return None, name


def base_metric(name: str) -> str:
    """`val_accuracy` -> `accuracy`; a name without a split prefix is returned as it is."""
    return split_of(name)[1]


def default_mode(metric: str) -> str:
    """`mode: auto`: `min` or `max`, the known direction of the metric (with or without a split prefix)."""
    try:
        return DIRECTION[base_metric(metric)]
    except KeyError:
        raise ValueError(f"`{metric}` is not a metric with a known direction "
                         f"(known: {', '.join(METRICS)})") from None


def resolve_mode(mode: str, metric: str) -> str:
    return default_mode(metric) if mode == "auto" else mode


def check_monitorable(name: str) -> str:
    """A metric that early stopping, a sweep or a schedule can watch; ValueError naming the choices."""
    if name not in MONITORABLE:
        raise ValueError(f"unknown metric `{name}`{did_you_mean(name, MONITORABLE)} "
                         f"(choose from: {', '.join(MONITORABLE)})")
    return name
