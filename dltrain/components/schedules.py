"""Learning-rate schedules with optional linear warmup.

Every schedule is a multiplier of the optimizer's lr:  lr(t) = lr * warmup(t) * main(t).
The warmup factor rises linearly per optimizer step over `warmup_epochs`; the main schedule starts
when warmup ends (as torch's SequentialLR does) and is evaluated per epoch, except `onecycle`,
which is evaluated per step. One closed-form multiplier (instead of chaining torch schedulers,
whose chained forms compose badly with warmup and plateau) keeps resume exact: the state is
the step count and, for `plateau`, a few numbers.

`onecycle` cycles the learning rate only (torch's OneCycleLR also cycles momentum).
"""

from __future__ import annotations

import math
from typing import Annotated, Callable, Literal

from pydantic import Field

from dltrain.core.registry import Registry, Spec
from dltrain.core.metrics import default_mode
from dltrain.core.types import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, UnitInterval


class ScheduleSpec(Spec):
    warmup_epochs: Annotated[float, Field(ge=0)] = 0.0  # linear warmup from ~0 to lr, per step


SCHEDULES = Registry("schedule", base=ScheduleSpec)
register = SCHEDULES.register
Decay = Annotated[float, Field(gt=0, le=1)]
Multiplier = Callable[[float], float]  # epochs since warmup ended -> lr multiplier


@register("constant", description="the optimizer's lr throughout")
def constant(epochs, /) -> Multiplier:
    return lambda e: 1.0


@register("step", description="multiply lr by gamma every step_size epochs")
def step(epochs, /, *, step_size: PositiveInt = 10, gamma: Decay = 0.1) -> Multiplier:
    return lambda e: gamma ** (int(e) // step_size)


@register("multistep", description="multiply lr by gamma at each epoch in milestones")
def multistep(epochs, /, *, milestones: list[PositiveInt] = [10, 20], gamma: Decay = 0.1) -> Multiplier:
    return lambda e: gamma ** sum(1 for m in milestones if int(e) >= m)


@register("exponential", description="multiply lr by gamma every epoch")
def exponential(epochs, /, *, gamma: Decay = 0.95) -> Multiplier:
    return lambda e: gamma ** int(e)


@register("cosine", description="cosine annealing from lr to min_factor*lr over the epochs after warmup")
def cosine(epochs, /, *, min_factor: Annotated[float, Field(ge=0, le=1)] = 0.0,
           t_max: PositiveInt | None = None) -> Multiplier:
    span = t_max or max(1, epochs)

    def multiplier(e: float) -> float:
        progress = min(int(e), span) / span
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return multiplier


@register("onecycle", description="per step: rise from lr/div_factor to lr over pct_start, then anneal to ~0 (Smith 2018)")
def onecycle(epochs, /, *, pct_start: UnitInterval = 0.3, div_factor: PositiveFloat = 25.0,
             final_div_factor: PositiveFloat = 1e4) -> Multiplier:
    start, end = 1.0 / div_factor, 1.0 / (div_factor * final_div_factor)
    total = max(epochs, 1e-9)

    def cos_interp(a: float, b: float, t: float) -> float:
        return b + (a - b) * 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))

    def multiplier(e: float) -> float:
        t = e / total
        if t < pct_start:
            return cos_interp(start, 1.0, t / pct_start)
        return cos_interp(1.0, end, (t - pct_start) / (1 - pct_start) if pct_start < 1 else 1.0)

    multiplier.per_step = True  # type: ignore[attr-defined]
    return multiplier


@register("plateau", description="multiply lr by factor when `monitor` has not improved for `patience` epochs")
def plateau(epochs, /, *, monitor: str = "val_loss", mode: Literal["auto", "min", "max"] = "auto",
            factor: Decay = 0.1, patience: NonNegativeInt = 10, threshold: NonNegativeFloat = 1e-4,
            cooldown: NonNegativeInt = 0, min_factor: Annotated[float, Field(ge=0, le=1)] = 0.0) -> "Plateau":
    return Plateau(monitor, mode, factor, patience, threshold, cooldown, min_factor)


class Plateau:
    """ReduceLROnPlateau as a multiplier (relative threshold, as torch's default `rel` mode)."""

    def __init__(self, monitor, mode, factor, patience, threshold, cooldown, min_factor):
        self.monitor, self.factor, self.patience = monitor, factor, patience
        self.mode = mode if mode != "auto" else default_mode(monitor)
        self.threshold, self.cooldown, self.min_factor = threshold, cooldown, min_factor
        self.scale, self.best, self.bad_epochs, self.cooldown_left = 1.0, None, 0, 0

    def __call__(self, e: float) -> float:
        return self.scale

    def observe(self, value: float) -> None:
        better = self.best is None or (value < self.best * (1 - self.threshold) if self.mode == "min"
                                       else value > self.best * (1 + self.threshold))
        if better:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        elif self.bad_epochs > self.patience:
            self.scale = max(self.scale * self.factor, self.min_factor)
            self.cooldown_left, self.bad_epochs = self.cooldown, 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs,
                "cooldown_left": self.cooldown_left}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best = state["scale"], state["best"]
        self.bad_epochs, self.cooldown_left = state["bad_epochs"], state["cooldown_left"]


class LRSchedule:
    """Sets every param group's lr = initial lr * warmup * main, once per optimizer step."""

    def __init__(self, optimizer, main: Multiplier, *, warmup_epochs: float, steps_per_epoch: int):
        self.optimizer, self.main = optimizer, main
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.warmup_steps = round(warmup_epochs * self.steps_per_epoch)
        self.per_step = getattr(main, "per_step", False)
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.steps = 0  # optimizer steps taken
        self._apply()

    def multiplier(self) -> float:
        warm = min(1.0, (self.steps + 1) / self.warmup_steps) if self.steps < self.warmup_steps else 1.0
        after = max(0, self.steps - self.warmup_steps) / self.steps_per_epoch  # epochs since warmup
        return warm * self.main(after if self.per_step else math.floor(after + 1e-9))

    def _apply(self) -> None:
        m = self.multiplier()
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * m

    def step_batch(self) -> None:
        self.steps += 1
        self._apply()

    def step_epoch(self, logs: dict) -> None:
        if isinstance(self.main, Plateau) and self.steps >= self.warmup_steps:
            if self.main.monitor not in logs:
                raise KeyError(f"plateau schedule monitors `{self.main.monitor}`, which this run does not record")
            self.main.observe(logs[self.main.monitor])
            self._apply()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        state = {"steps": self.steps, "base_lrs": list(self.base_lrs)}
        if isinstance(self.main, Plateau):
            state["plateau"] = self.main.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.base_lrs = state["steps"], list(state["base_lrs"])
        if "plateau" in state:
            self.main.load_state_dict(state["plateau"])
        self._apply()
