"""The Diagnostics callback: per-layer statistics during a run, diagnostics.jsonl, TensorBoard
summaries, and non-finite forensics when the run diverges.

Costs, and why they stay small (bench/diagnostics_overhead.py measures them):
- Every training batch: one forward pre-hook on the model and one on the loss (they note which
  batch was fed, by reference). No device work, no host sync.
- Every `every` optimizer steps: the probe's hooks are attached for that one step (from its first
  forward to its on_step_end, which takes the reading; the weights are copied when the step is
  armed, since nothing changes them before the optimizer step); statistics stay on the device and
  are read back at the next log point, where the loop syncs anyway.
- Every epoch's end, and every log point at least SNAPSHOT_EVERY steps after the last copy: a copy
  of the training state for forensics (into buffers kept from the last copy).
- Probe epochs (1, 2, 4, 8, ... and the end): one extra forward/backward on a fixed batch, which
  gives comparable depth profiles across epochs, and TensorBoard histograms of it.

All of it runs on a time budget (`log.diagnostics_budget`, a share of the training time measured
by the run itself): a step reading or a probe epoch that is not required is skipped while the
time spent on diagnostics, plus that work's last measured cost, would exceed the share; so are
the TensorBoard histograms of a probe (most of its cost) but those of initialization. Required,
whatever they cost: the initialization probe, epochs 1 and 2 (the early epochs the verdicts and
the growth trend compare), the end of training, and the forensics snapshots.
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np
import torch

from dltrain.core.status import RunStatus
from dltrain.diagnostics.forensics import FlightRecorder, RunFacts, describe, replay, suggestions
from dltrain.diagnostics.probes import Probe, Reading, probe_pass
from dltrain.features.tensorboard import TensorBoard
from dltrain.rundir import layout
from dltrain.rundir.writer import RunDir, event_writer, write_json
from dltrain.train.events import Callback, FitState, StepEnd, StopTraining

HISTOGRAM_BINS = 64  # 4x cheaper to write than TensorBoard's default ~1500 exponential buckets
SNAPSHOT_EVERY = 50  # optimizer steps between forensics snapshots (and at every epoch's end)


REQUIRED_EPOCHS = (1, 2)  # probe epochs kept whatever the budget: the verdicts' early epochs


def is_probe_epoch(epoch: int) -> bool:
    """1, 2, 4, 8, ...: early epochs, where most changes happen, are seen closely, late ones sparsely."""
    return epoch > 0 and epoch & (epoch - 1) == 0


class Budget:
    """Diagnostics' share of the run's time. `timed(kind)` measures a piece of work; `allows(kind)`
    says whether optional work of that kind fits: the time spent so far plus its last measured
    cost within `share` of the time spent training (the time since the start, less diagnostics').
    Not measured: the statistics an armed step's hooks compute inside its forward and backward
    (device work, a fraction of a probe pass's)."""

    def __init__(self, share: float):
        self.share = share
        self.started = time.perf_counter()
        self.spent = 0.0
        self.cost: dict[str, float] = {}  # the last measured cost of each kind of work
        self.skipped: dict[str, int] = {}

    def training(self) -> float:
        return time.perf_counter() - self.started - self.spent

    def allows(self, *kinds: str) -> bool:
        """Optional work made of these kinds fits (a skip is counted under the last kind)."""
        if self.spent + sum(self.cost.get(kind, 0.0) for kind in kinds) <= self.share * self.training():
            return True
        self.skipped[kinds[-1]] = self.skipped.get(kinds[-1], 0) + 1
        return False

    @contextlib.contextmanager
    def timed(self, kind: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.cost[kind] = time.perf_counter() - started
            self.spent += self.cost[kind]

    def report(self) -> dict:
        return {"seconds": round(self.spent, 4), "training_seconds": round(self.training(), 4),
                "share": self.share, "skipped": dict(self.skipped)}


def histogram_edges(values: np.ndarray, bins: int) -> np.ndarray | None:
    """`bins` equal bins over the values' range, in float64, or None when a value is not finite.
    numpy's own choice fails ("Too many bins for data range") on values that are all (nearly)
    equal and large, as an exploding run's are: its +-0.5 around them rounds back to one number."""
    lo, hi = float(values.min()), float(values.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    least = 1e-6 * max(abs(lo), abs(hi), 1.0)  # a width 64 bins can split at any magnitude
    if hi - lo < least:
        lo, hi = lo - least / 2, hi + least / 2
    return np.linspace(lo, hi, bins + 1)


def summary_scalars(record: dict) -> dict[str, float]:
    """The few TensorBoard curves worth watching; per-layer detail is in the histograms and the file."""
    out = {}
    norms = [layer["grad_norm"] for layer in record["layers"] if isinstance(layer.get("grad_norm"), float)]
    if len(norms) >= 2 and norms[-1] > 0:
        out["grad_norm_first_over_last"] = norms[0] / norms[-1]
    if norms:
        out["grad_norm_total"] = math.sqrt(sum(n * n for n in norms))
    for key, name in (("dead", "max_dead_fraction"), ("saturated", "max_saturated_fraction")):
        values = [a[key] for a in record["activations"] if isinstance(a.get(key), float)]
        if values:
            out[name] = max(values)
    ratios = [layer["update_ratio"] for layer in record["layers"] if isinstance(layer.get("update_ratio"), float)]
    if ratios:
        out["max_update_ratio"] = max(ratios)
    return out


class Diagnostics(Callback):
    """Statistics at initialization, every `every` steps and at probe epochs; forensics on divergence.

    `sample` is a fixed training batch (x, y) for the probe passes. `model_facts` are the recipe's
    `init`, `activation` and `norm` names (RunFacts fields), for advice after a divergence. Put this
    callback before the NonFiniteGuard: its StopTraining, which names the layer, is then the one
    the run reports.
    """

    def __init__(self, run: RunDir, sample: tuple[torch.Tensor, torch.Tensor], every: int,
                 tensorboard: bool = True, model_facts: dict | None = None, budget: float = 0.03):
        self.run, self.sample, self.every, self.tensorboard = run, sample, every, tensorboard
        self.budget = Budget(budget)
        self.model_facts = model_facts or {}
        self.state: FitState | None = None
        self.probe: Probe | None = None
        self.recorder = FlightRecorder()
        self.pending: list[Reading] = []  # on the device until the next log point
        self.unwritten: list[dict] = []  # host records not yet in diagnostics.jsonl
        self.grad_history: list[dict] = []  # (step, total gradient norm) of every record, for forensics
        self.probes: list[dict] = []  # the probe records, for the depth image at the end
        self.handles: list = []  # the two per-batch hooks, for the whole run
        self.step_armed = False
        self.loss_scale = None  # the armed step's fp16 loss scale (a device tensor), or None
        self.busy = False  # a probe pass or a replay is running: the hooks below stand aside
        self.writer = None
        self.last_flush = time.monotonic()

    # -- events ----------------------------------------------------------------------------------

    def on_fit_start(self, state: FitState) -> None:
        self.state = state
        self.budget = Budget(self.budget.share)  # training starts now
        learner = state.learner
        model = learner.module
        self.probe = Probe(model)
        self.probe.grad_scale = self._grad_scale
        self.handles = [model.register_forward_pre_hook(self._before_forward),
                        learner.loss_fn.register_forward_pre_hook(self._before_loss)]
        if state.step == 0:
            self._probe_pass(state, "init")
        with self.budget.timed("snapshot"):
            self.recorder.snapshot(learner, state.step)

    def on_step_end(self, state: FitState, step: StepEnd) -> None:
        if not self.step_armed:
            return
        if step.skipped:  # the fp16 scaler changed nothing: read the next step instead, at its new scale
            self.loss_scale = state.learner.loss_scale()
            return
        with self.budget.timed("step"):
            self._disarm_step()
            self.pending.append(self.probe.reading(state.step, state.epoch + 1, "step"))

    def on_log(self, state: FitState, losses: list[tuple[int, float]]) -> None:
        bad = next(((step, value) for step, value in losses if not math.isfinite(value)), None)
        if bad is not None:
            self._diverged(state, *bad)
        self._drain()
        if state.step - self.recorder.step >= SNAPSHOT_EVERY:
            with self.budget.timed("snapshot"):
                self.recorder.snapshot(state.learner, state.step)

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        if (is_probe_epoch(state.epoch) and all(math.isfinite(v) for k, v in logs.items() if k.endswith("loss"))
                and (state.epoch in REQUIRED_EPOCHS or self.budget.allows("probe"))):
            self._probe_pass(state, "epoch")
        with self.budget.timed("records"):
            self._drain()
            self._write()
            # at least once an epoch, so the batches kept for a replay never span an older epoch's data
            self.recorder.snapshot(state.learner, state.step)

    def on_fit_end(self, state: FitState) -> None:
        if self.probe is None:  # on_fit_start never ran (another callback failed first)
            return
        for handle in self.handles:
            handle.remove()
        self.handles = []
        if self.step_armed:
            self._disarm_step()
        finished = state.stop is not None and (state.stop.status.finished or
                                               state.stop.status is RunStatus.INTERRUPTED)
        if finished and not (self.probes and self.probes[-1]["step"] == state.step):
            self._probe_pass(state, "end")
        self._drain()
        self._write(sync=True)
        if self.writer is not None:
            self.writer.close()
        # what diagnostics cost this run: written into run.json with the run's end (the runner's next update)
        self.run.info["diagnostics_cost"] = self.budget.report()

    # -- hooks on every training batch -----------------------------------------------------------

    def _before_forward(self, module, args) -> None:
        if self.busy or not module.training or not torch.is_grad_enabled():
            return
        step = self.state.step + 1  # the optimizer step this batch belongs to
        self.recorder.batches.append([step, args[0] if args else None, None])
        if step % self.every == 0 and not self.step_armed and self.budget.allows("arm", "step"):
            with self.budget.timed("arm"):
                self.probe.arm()
                self.probe.remember_weights()  # as they will be right before this step's update
                self.loss_scale = self.state.learner.loss_scale()
                self.step_armed = True

    def _before_loss(self, module, args) -> None:
        batches = self.recorder.batches
        if not self.busy and torch.is_grad_enabled() and batches and batches[-1][2] is None and len(args) > 1:
            batches[-1][2] = args[1]  # the targets of the batch just fed

    def _disarm_step(self) -> None:
        self.probe.disarm()
        self.step_armed = False

    def _grad_scale(self):
        return self.loss_scale if self.step_armed else None  # probe passes do not scale their loss

    # -- records ---------------------------------------------------------------------------------

    def _probe_pass(self, state: FitState, phase: str) -> None:
        learner = state.learner
        with self.budget.timed("probe"):
            keep = self._tensorboard() is not None
            self.busy = True
            try:
                reading = probe_pass(learner.module, learner.loss_fn, *self.sample, self.probe, step=state.step,
                                     epoch=state.epoch, keep=keep, autocast=learner.autocast, phase=phase)
            finally:
                self.busy = False
            self.pending.append(reading)
        if keep and (phase == "init" or self.budget.allows("histograms")):  # the first picture is kept
            with self.budget.timed("histograms"):
                self._histograms(state.epoch)
        self.probe.kept_gradients, self.probe.kept_activations = {}, {}

    def _drain(self) -> None:
        """Copy pending readings to the host (call at points where the loop syncs anyway)."""
        for reading in self.pending:
            record = reading.to_host()
            if reading.phase is not None:
                self.probes.append(record)
            total = summary_scalars(record).get("grad_norm_total")
            if total is not None:
                self.grad_history.append({"step": record["step"], "kind": record["kind"], "grad_norm": total})
            self.unwritten.append(record)
        self.pending = []

    def _write(self, sync: bool = False) -> None:
        """Append the new records (fsync only when asked: at the end of the run)."""
        if not self.unwritten and not sync:
            return
        self.run.append_jsonl(layout.DIAGNOSTICS, self.unwritten, sync=sync)
        writer = self._tensorboard()
        if writer is not None:
            for record in self.unwritten:
                for name, value in summary_scalars(record).items():
                    writer.add_scalar(f"diagnostics/{name}", value, record["step"])
            if sync or time.monotonic() - self.last_flush >= TensorBoard.FLUSH_SECONDS:
                writer.flush()  # waits for TensorBoard's writer thread: as often as the TensorBoard callback
                self.last_flush = time.monotonic()
        self.unwritten = []

    def _tensorboard(self):
        if self.tensorboard and self.writer is None:
            self.writer = event_writer(self.run.path, layout.DIAGNOSTICS_EVENTS)
        return self.writer

    def _histograms(self, epoch: int) -> None:
        named = [(f"weights/{name}.{pname}", param.detach())
                 for name, module in self.probe.layer_modules.items()
                 for pname, param in module.named_parameters(recurse=False)]
        named += [(f"gradients/{name}", grad) for name, grad in self.probe.kept_gradients.items()]
        named += [(f"activations/{name}", value) for name, value in self.probe.kept_activations.items()]
        for tag, tensor in named:
            values = tensor.float().cpu().numpy()
            edges = histogram_edges(values, HISTOGRAM_BINS) if values.size else None
            if edges is not None:  # a histogram of a non-finite tensor says nothing: its record does
                self.writer.add_histogram(tag, values, epoch, bins=edges)

    # -- divergence ------------------------------------------------------------------------------

    def _facts(self, learner) -> RunFacts:
        clip = learner.clip
        return RunFacts(lr=learner.optimizer.param_groups[0]["lr"], clip_norm=clip.norm if clip else None,
                        clip_value=clip.value if clip else None, **self.model_facts)

    def _diverged(self, state: FitState, step: int, value: float) -> None:
        """Replay the failing steps, write forensics.json, and stop naming the layer."""
        learner = state.learner
        if self.step_armed:
            self._disarm_step()
        self.pending = [r for r in self.pending if r.step < step]  # readings of the failing steps are noise
        self._drain()
        layer_names = self.probe.layer_names()
        self.busy = True
        try:
            found = replay(learner, self.recorder, step, layer_names) if self.recorder.saved is not None else None
        finally:
            self.busy = False
        first = found["first"] if found else None
        where = describe(first) + f", at step {first['step']}" if first else \
            "the replay did not reproduce the non-finite value (non-deterministic kernels?)"
        report = {
            "step": step, "epoch": state.epoch + 1, "loss": str(value),
            "first_nonfinite": first, "explanation": where,
            "reproduced": bool(found and found["reproduced"]),
            "replayed_from_step": found["replayed_from_step"] if found else None,
            "grad_norm_history": {"recorded": self.grad_history, "replayed": found["replayed"] if found else []},
            "suggestions": suggestions(first, self._facts(learner)),
        }
        write_json(self.run.path / layout.FORENSICS, report)
        self._write(sync=True)
        raise StopTraining(RunStatus.DIVERGED, f"diverged: non-finite loss ({value}) at epoch {state.epoch + 1}, step {step}; "
                                       f"{where} (details: {layout.FORENSICS})")
