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
"""

from __future__ import annotations

import math
import time

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


def is_probe_epoch(epoch: int) -> bool:
    """1, 2, 4, 8, ...: early epochs, where most changes happen, are seen closely, late ones sparsely."""
    return epoch > 0 and epoch & (epoch - 1) == 0


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
                 tensorboard: bool = True, model_facts: dict | None = None):
        self.run, self.sample, self.every, self.tensorboard = run, sample, every, tensorboard
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
        learner = state.learner
        model = learner.module
        self.probe = Probe(model)
        self.probe.grad_scale = self._grad_scale
        self.handles = [model.register_forward_pre_hook(self._before_forward),
                        learner.loss_fn.register_forward_pre_hook(self._before_loss)]
        if state.step == 0:
            self._probe_pass(state, "init")
        self.recorder.snapshot(learner, state.step)

    def on_step_end(self, state: FitState, step: StepEnd) -> None:
        if not self.step_armed:
            return
        if step.skipped:  # the fp16 scaler changed nothing: read the next step instead, at its new scale
            self.loss_scale = state.learner.loss_scale()
            return
        self._disarm_step()
        self.pending.append(self.probe.reading(state.step, state.epoch + 1, "step"))

    def on_log(self, state: FitState, losses: list[tuple[int, float]]) -> None:
        bad = next(((step, value) for step, value in losses if not math.isfinite(value)), None)
        if bad is not None:
            self._diverged(state, *bad)
        self._drain()
        if state.step - self.recorder.step >= SNAPSHOT_EVERY:
            self.recorder.snapshot(state.learner, state.step)

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        if is_probe_epoch(state.epoch) and all(math.isfinite(v) for k, v in logs.items() if k.endswith("loss")):
            self._probe_pass(state, "epoch")
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
            if self.probes:
                from dltrain.views.diagnostic_figures import depth_figure
                self.writer.add_figure("diagnostics/depth_profile", depth_figure(self.probes, f"run {self.run.path.name}"),
                                       state.epoch)
            self.writer.close()

    # -- hooks on every training batch -----------------------------------------------------------

    def _before_forward(self, module, args) -> None:
        if self.busy or not module.training or not torch.is_grad_enabled():
            return
        step = self.state.step + 1  # the optimizer step this batch belongs to
        self.recorder.batches.append([step, args[0] if args else None, None])
        if step % self.every == 0 and not self.step_armed:
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
        keep = self._tensorboard() is not None
        self.busy = True
        try:
            reading = probe_pass(learner.module, learner.loss_fn, *self.sample, self.probe, step=state.step,
                                 epoch=state.epoch, keep=keep, autocast=learner.autocast, phase=phase)
        finally:
            self.busy = False
        self.pending.append(reading)
        if keep:
            self._histograms(state.epoch)

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
        writer = self.writer
        for name, module in self.probe.layer_modules.items():
            for pname, param in module.named_parameters(recurse=False):
                writer.add_histogram(f"weights/{name}.{pname}", param.detach().float().cpu(), epoch, bins=HISTOGRAM_BINS)
        for name, grad in self.probe.kept_gradients.items():
            writer.add_histogram(f"gradients/{name}", grad.cpu(), epoch, bins=HISTOGRAM_BINS)
        for name, value in self.probe.kept_activations.items():
            writer.add_histogram(f"activations/{name}", value.float().cpu(), epoch, bins=HISTOGRAM_BINS)
        self.probe.kept_gradients, self.probe.kept_activations = {}, {}

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
