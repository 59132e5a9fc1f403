"""The recipe's `sweep:` section, typed and strict, and the search space it describes.

    sweep:
      method: bayes                       # grid | random | bayes (TPE)
      params:
        optimizer.lr: {low: 1.0e-4, high: 1.0e-1, log: true}   # a range
        model.activation: [relu, gelu, tanh]                   # choices
      trials: 20
      metric: val_loss                    # mode: auto (max for accuracy, min otherwise)
      pruner: none                        # none | median | hyperband
      seeds: 1
      workers: 1
      storage: runs/sweeps.db             # default <runs-dir>/sweeps.db; or postgresql://...

Each key of `params` is a dotted recipe key path; that it names a real key is checked by
recipe.py, which applies every candidate value as an override and validates the result.
Optuna parameter names are the key paths; choices that are not plain scalars (a list of
hidden sizes, a component mapping) are given to Optuna as their JSON text and decoded back.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Annotated, Any, Union

from pydantic import BeforeValidator, Field, field_validator, model_validator

from dltrain.components.search import METHODS, PRUNERS
from dltrain.core.errors import did_you_mean
from dltrain.core.registry import Spec
from dltrain.core.metrics import resolve_mode
from dltrain.core.types import Mode, Monitorable, PositiveInt

DEFAULT_TRIALS = 20  # for random and bayes when `trials` is left out
RANGE_KEYS = ("low", "high", "log", "step")
STORAGE_SCHEMES = ("sqlite", "postgresql")  # what dltrain has drivers for (psycopg: the `postgres` extra)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_param(value: Any) -> Any:
    """A param is a non-empty list of choices or a range mapping; say exactly what is wrong otherwise."""
    if isinstance(value, list):
        if not value:
            raise ValueError("empty list of choices: expected at least one value, or a range {low, high}")
        labels = [_label(v) for v in value]
        dups = sorted({str(x) for x in labels if labels.count(x) > 1})
        if dups:
            raise ValueError(f"duplicate choice {', '.join(dups)}")
        return value
    if not isinstance(value, dict):
        raise ValueError(f"expected a list of choices or a range {{low, high, log, step}}; got {value!r}")
    for key in value:
        if key not in RANGE_KEYS:
            raise ValueError(f"unknown range key `{key}`{did_you_mean(str(key), RANGE_KEYS)} "
                             f"(range keys: {', '.join(RANGE_KEYS)})")
    for key in ("low", "high"):
        if key not in value:
            raise ValueError(f"a range needs `low` and `high`; `{key}` is missing")
        if not _is_number(value[key]):
            raise ValueError(f"range `{key}` must be a finite number; got {value[key]!r}")
    low, high, step = value["low"], value["high"], value.get("step")
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"range `log` must be true or false; got {log!r}")
    if low > high:
        raise ValueError(f"low ({low}) is greater than high ({high})")
    if log and low <= 0:
        raise ValueError(f"a log range needs low > 0; got low {low}")
    if step is not None:
        if not _is_number(step) or step <= 0:
            raise ValueError(f"range `step` must be a positive number; got {step!r}")
        if log:
            raise ValueError("`log` and `step` cannot be combined (a log range is continuous)")
        n = (high - low) / step
        if abs(n - round(n)) > 1e-9 * max(1.0, abs(n)):
            raise ValueError(f"high - low ({high - low}) is not a multiple of step ({step})")
    return value


class Range(Spec):
    low: Union[int, float]
    high: Union[int, float]
    log: bool = False  # sample log-uniformly (learning rates, weight decay)
    step: Union[int, float, None] = None  # sample only low, low+step, ..., high

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) for v in (self.low, self.high)) and isinstance(self.step, (int, type(None)))

    def points(self) -> list:
        n = round((self.high - self.low) / self.step)
        if self.is_int:
            return [self.low + i * self.step for i in range(n + 1)]
        return [float(f"{self.low + i * self.step:.12g}") for i in range(n + 1)]  # 0.1+0.2 -> 0.3

    def suggest(self, trial, name: str):
        if self.is_int:
            return trial.suggest_int(name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)


Param = Annotated[Union[list[Any], Range], BeforeValidator(_check_param)]


def _label(value: Any) -> Any:
    """The value Optuna stores: scalars as they are, anything else as its JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


class SweepSpec(Spec):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")] | None = None  # study name
    method: METHODS.spec_type = "bayes"  # type: ignore[assignment]
    params: Annotated[dict[str, Param], Field(min_length=1)]
    trials: PositiveInt | None = None  # random/bayes: 20; grid: the number of combinations
    metric: Monitorable = "val_loss"  # the value to optimize: the best epoch's value of this metric
    mode: Mode = "auto"  # auto: max for accuracy, min otherwise
    pruner: PRUNERS.spec_type = "none"  # type: ignore[assignment]
    seeds: PositiveInt = 1  # runs per configuration (seed, seed+1, ...); the sampler sees the mean
    workers: PositiveInt = 1  # trials at once on this machine, each in its own process
    storage: str | None = None  # a file (SQLite) or a sqlite:// or postgresql:// URL; default <runs-dir>/sweeps.db

    @field_validator("params")
    @classmethod
    def _not_the_sweep_itself(cls, params: dict) -> dict:
        for key in params:
            if key == "sweep" or key.startswith("sweep."):
                raise ValueError(f"`{key}`: a sweep cannot vary its own settings")
        return params

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str | None) -> str | None:
        if value is not None and "://" in value:
            scheme = value.split("://", 1)[0].split("+", 1)[0]
            if scheme not in STORAGE_SCHEMES:
                raise ValueError(f"unsupported storage `{scheme}://`; expected a file path (SQLite), "
                                 f"sqlite:///path or postgresql://user@host:port/database")
        return value

    @model_validator(mode="after")
    def _resolve(self):
        object.__setattr__(self, "mode", resolve_mode(self.mode, self.metric))
        if self.method.name == "grid":
            for key, param in self.params.items():
                if isinstance(param, Range) and param.step is None:
                    raise ValueError(f"grid search needs choices (a list) or a range with `step`; "
                                     f"`{key}` is a continuous range")
            size = self.grid_size()
            if self.trials is not None and self.trials != size:
                raise ValueError(f"a grid runs every combination: {size} here, but trials is {self.trials} "
                                 f"(leave `trials` out, or use method random or bayes)")
            object.__setattr__(self, "trials", size)
        elif self.trials is None:
            object.__setattr__(self, "trials", DEFAULT_TRIALS)
        return self

    # -- the search space -------------------------------------------------------------------------

    def choices(self, key: str) -> list:
        param = self.params[key]
        return param.points() if isinstance(param, Range) else list(param)

    def grid_values(self) -> dict[str, list]:
        """Optuna's view of the grid: key -> labels (empty unless every param is discrete)."""
        if any(isinstance(p, Range) and p.step is None for p in self.params.values()):
            return {}
        return {key: [_label(v) for v in self.choices(key)] for key in self.params}

    def grid_size(self) -> int:
        return math.prod(len(self.choices(key)) for key in self.params)

    def grid_points(self) -> list[dict]:
        """Every combination, as Optuna parameter values, in the order the params are written."""
        values = self.grid_values()
        return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]

    def candidates(self) -> dict[str, list]:
        """Values that must each make a valid recipe: every choice, or a range's two ends."""
        return {key: list(p) if isinstance(p, list) else [p.low, p.high] for key, p in self.params.items()}

    def suggest(self, trial) -> dict[str, Any]:
        """Ask the trial for every param; returns key path -> recipe value."""
        values = {}
        for key, param in self.params.items():
            if isinstance(param, Range):
                values[key] = param.suggest(trial, key)
            else:
                by_label = {_label(v): v for v in param}
                values[key] = by_label[trial.suggest_categorical(key, list(by_label))]
        return values

    def decode(self, optuna_params: dict) -> dict[str, Any]:
        """Optuna's stored values -> recipe values."""
        out = {}
        for key, value in optuna_params.items():
            param = self.params.get(key)
            out[key] = {_label(v): v for v in param}.get(value, value) if isinstance(param, list) else value
        return out

    def fingerprint(self) -> dict:
        """What results depend on; a study refuses to continue when it changes."""
        return {"method": self.method.name, "metric": self.metric, "mode": self.mode, "seeds": self.seeds,
                "params": {k: (p if isinstance(p, list) else p.model_dump()) for k, p in self.params.items()}}

