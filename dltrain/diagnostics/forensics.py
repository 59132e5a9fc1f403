"""Non-finite forensics: when the loss becomes NaN or inf, replay the failing steps with hooks to
find the first layer that produced a non-finite activation, gradient or weight.

The flight recorder keeps, at each epoch's end and at log points (at most every 50 steps) where the
weights are still finite, a copy of the training state (model, optimizer, schedule, loss scaler,
RNG) and from then on references to the batches the model is fed (no copies: they are slices the
loader made anyway). The loop reads the batch losses only at log points, so divergence is noticed
up to `log.every_steps` steps late; the replay re-runs the steps since the copy (tens, cheap),
checking every module's output and every parameter's gradient, and stops at the first
non-finite value.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from dltrain.diagnostics.probes import square_sum


def all_finite(tensors) -> bool:
    """Exact (huge finite weights are finite) in two foreach ops and one sync: x * 0 is 0 for a
    finite x and NaN for inf or NaN, so the norms of the products are all 0 or some NaN."""
    tensors = [t.detach() for t in tensors if t.is_floating_point()]
    if not tensors:
        return True
    zeros = torch._foreach_norm(torch._foreach_mul(tensors, 0.0))
    return bool(torch.stack([z.float() for z in zeros]).sum() == 0)


class FlightRecorder:
    """The last known-good training state, and the (step, x, y) batches fed to the model since.

    A snapshot copies into buffers kept from the previous one (one foreach copy, no allocation, no
    state_dict() walk): it happens at every log point, so it has to be cheap.
    """

    def __init__(self):
        self.saved: list[torch.Tensor] | None = None  # parameters, buffers, optimizer state tensors
        self.layout: list[tuple] = []  # what each saved tensor is, to restore it
        self.extras: dict = {}  # optimizer non-tensor state, schedule, loss scaler, RNG
        self.step = 0  # optimizer steps taken when the state was copied
        self.batches: list[list] = []
        self._model_part: tuple[list, list] | None = None

    def _live(self, learner) -> tuple[list[tuple], list[torch.Tensor], dict]:
        model, optimizer = learner.module, learner.optimizer
        if self._model_part is None:  # the model's tensors never change identity: walk it once
            self._model_part = ([("param", n, None) for n, _ in model.named_parameters()]
                                + [("buffer", n, None) for n, _ in model.named_buffers()],
                                list(model.parameters()) + list(model.buffers()))
        layout, tensors = list(self._model_part[0]), list(self._model_part[1])
        plain = {}
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for i, p in enumerate(params):
            for key, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor):
                    layout.append(("optimizer", i, key))
                    tensors.append(value)
                else:
                    plain[(i, key)] = value
        return layout, [t.detach() for t in tensors], plain

    def snapshot(self, learner, step: int) -> bool:
        """Copy the state if the weights are finite (else keep the older copy). Returns whether it did."""
        if not all_finite(list(learner.module.parameters())):
            return False
        layout, tensors, plain = self._live(learner)
        same = self.saved is not None and layout == self.layout and all(
            a.shape == b.shape and a.dtype == b.dtype for a, b in zip(self.saved, tensors))
        if same:
            torch._foreach_copy_(self.saved, tensors)
        else:
            self.saved, self.layout = [t.clone() for t in tensors], layout
        self.extras = {"optimizer": copy.deepcopy(plain), "schedule": copy.deepcopy(learner.schedule.state_dict()),
                       "scaler": learner.scaler.state_dict(), "rng": torch.get_rng_state(),
                       "cuda_rng": torch.cuda.get_rng_state_all() if learner.device.type == "cuda" else None}
        self.step = step
        self.batches = []
        return True

    def restore(self, learner) -> None:
        model, optimizer = learner.module, learner.optimizer
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        by_index = [p for group in optimizer.param_groups for p in group["params"]]
        optimizer.state.clear()
        with torch.no_grad():
            for (kind, name, key), saved in zip(self.layout, self.saved):
                if kind == "param":
                    params[name].copy_(saved)
                elif kind == "buffer":
                    buffers[name].copy_(saved)
                else:
                    optimizer.state[by_index[name]][key] = saved.clone()
        for (i, key), value in self.extras["optimizer"].items():
            optimizer.state[by_index[i]][key] = copy.deepcopy(value)
        learner.schedule.load_state_dict(self.extras["schedule"])
        if self.extras["scaler"]:
            learner.scaler.load_state_dict(self.extras["scaler"])
        torch.set_rng_state(self.extras["rng"])
        if self.extras["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all(self.extras["cuda_rng"])
        optimizer.zero_grad(set_to_none=True)


def _is_finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, (tuple, list)):
        return all(_is_finite(v) for v in value)
    return True


def _first_bad(tensor: torch.Tensor) -> str:
    bad = tensor.detach()[~torch.isfinite(tensor.detach())]
    return str(bad.flatten()[0].item()) if bad.numel() else "?"


class _Watch:
    """Forward hooks on every module: the first to turn finite inputs into a non-finite output;
    gradient hooks on every parameter: the first (in backward order) with a non-finite gradient."""

    def __init__(self, model: nn.Module, layer_names: list[str]):
        self.depth = {name: i + 1 for i, name in enumerate(layer_names)}
        self.layer = 0  # depth of the last layer that ran in this forward
        self.activation: dict | None = None
        self.gradient: dict | None = None
        self.handles = []
        for name, module in model.named_modules():
            if name:
                self.handles.append(module.register_forward_hook(self._forward(name)))
            for pname, param in module.named_parameters(recurse=False):
                if param.requires_grad:
                    self.handles.append(param.register_post_accumulate_grad_hook(self._backward(name, pname)))

    def _forward(self, name: str):
        def hook(module, inputs, output):
            self.layer = self.depth.get(name, self.layer)
            if self.activation is None and not _is_finite(output) and _is_finite(inputs):
                out = output if isinstance(output, torch.Tensor) else next(
                    o for o in output if isinstance(o, torch.Tensor) and not _is_finite(o))
                self.activation = {"module": name, "type": type(module).__name__, "layer": self.layer,
                                   "value": _first_bad(out)}
        return hook

    def _backward(self, name: str, pname: str):
        def hook(param):
            if self.gradient is None and not _is_finite(param.grad):
                self.gradient = {"module": name, "type": None, "parameter": pname, "layer": self.depth.get(name),
                                 "value": _first_bad(param.grad)}
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def _layer_norms(model: nn.Module, layer_names: list[str]) -> dict[str, float]:
    modules = dict(model.named_modules())
    norms = {}
    for name in layer_names:
        grads = [p.grad for p in modules[name].parameters(recurse=False) if p.grad is not None]
        if grads:
            norms[name] = math.sqrt(sum(float(square_sum(g)) for g in grads))
    return norms


def _nonfinite_weights(model: nn.Module, layer_names: list[str]) -> dict | None:
    modules = dict(model.named_modules())
    for i, name in enumerate(layer_names):
        for pname, p in modules[name].named_parameters(recurse=False):
            if not _is_finite(p):
                return {"module": name, "type": type(modules[name]).__name__, "parameter": pname,
                        "layer": i + 1, "value": _first_bad(p)}
    for name, p in model.named_parameters():  # norms and other parameters outside the layers
        if not _is_finite(p):
            return {"module": name.rpartition(".")[0], "type": None, "parameter": name.rpartition(".")[2],
                    "layer": None, "value": _first_bad(p)}
    return None


def replay(learner, recorder: FlightRecorder, bad_step: int, layer_names: list[str]) -> dict:
    """Re-run the steps from the recorder's state to `bad_step`, stopping at the first non-finite
    value. Leaves the learner in the replayed state (the run is over anyway)."""
    model = learner.module
    recorder.restore(learner)
    model.train()
    entries = [e for e in recorder.batches if e[0] <= bad_step and e[2] is not None]
    modules = dict(model.named_modules())
    history: list[dict] = []
    first = None
    check_grads = not learner.scaler.is_enabled()  # with fp16 loss scaling, inf gradients are routine
    for i, (step, x, y) in enumerate(entries):
        weights = _nonfinite_weights(model, layer_names)
        if weights is not None:
            first = {"kind": "weights", "step": step, **weights}
            break
        if not _is_finite(x):
            first = {"kind": "input", "step": step, "module": None, "type": None, "layer": None,
                     "value": _first_bad(x)}
            break
        watch = _Watch(model, layer_names)
        try:
            with learner.autocast():
                output = model(x)
                loss = learner.loss_fn(output, y)
            if watch.activation is not None:
                first = {"kind": "activation", "step": step, **watch.activation}
                break
            total = loss + learner.penalty(learner.weights) if learner.penalty else loss
            if not _is_finite(total):
                first = {"kind": "loss", "step": step, "module": None, "type": type(learner.loss_fn).__name__,
                         "layer": None, "value": _first_bad(total.reshape(1))}
                break
            learner.scaler.scale(total / learner.grad_accumulation).backward()
            if check_grads and watch.gradient is not None:
                grad = watch.gradient
                grad["type"] = type(modules[grad["module"]]).__name__ if grad["module"] in modules else None
                first = {"kind": "gradient", "step": step, **grad}
                break
        finally:
            watch.close()
        norms = _layer_norms(model, layer_names)
        history.append({"step": step, "loss": _json_number(float(loss.detach())),
                        "grad_norm": _json_number(math.sqrt(sum(v * v for v in norms.values()))),
                        "layers": {k: _json_number(v) for k, v in norms.items()}})
        boundary = i == len(entries) - 1 or entries[i + 1][0] != step
        if boundary and step < bad_step:
            learner.optimizer_step(measure_norm=False)
            weights = _nonfinite_weights(model, layer_names)
            if weights is not None:
                first = {"kind": "update", "step": step, **weights}
                break
    learner.optimizer.zero_grad(set_to_none=True)
    return {"reproduced": first is not None, "first": first, "replayed_from_step": recorder.step,
            "replayed": history}


WHAT = {
    "activation": "the output of {module} ({type}, layer {layer}) was the first non-finite value ({value})",
    "gradient": "the gradient of {module}.{parameter} ({type}, layer {layer}) was the first non-finite gradient ({value})",
    "update": "the optimizer step made {module}.{parameter} (layer {layer}) non-finite ({value})",
    "weights": "{module}.{parameter} (layer {layer}) was already non-finite ({value}) when the step began",
    "input": "the input batch itself holds a non-finite value ({value})",
    "loss": "the loss ({type}) was non-finite ({value}) although the network's outputs were finite",
}


def describe(first: dict) -> str:
    return WHAT[first["kind"]].format(**{k: ("?" if v is None else v) for k, v in first.items()})


# The initializer each activation family wants, and the ones that already give it (He et al. 2015;
# Glorot & Bengio 2010; Klambauer et al. 2017 for SELU).
FITTING_INIT = [
    ({"relu", "leaky_relu", "prelu", "elu", "gelu", "silu", "mish", "softplus"},
     "he_normal", {"he_normal", "he_uniform"}, "variance 2/fan_in keeps ReLU-family activations at scale"),
    ({"tanh", "sigmoid", "identity"}, "xavier_normal", {"xavier_normal", "xavier_uniform", "orthogonal"},
     "variance 2/(fan_in+fan_out) keeps tanh/sigmoid units off their bounds"),
    ({"selu"}, "lecun_normal", {"lecun_normal", "lecun_uniform"}, "SELU self-normalizes only from variance 1/fan_in"),
]


@dataclass(frozen=True)
class RunFacts:
    """What advice needs to know about the run, as plain values (diagnostics never reads the recipe).
    None: the architecture has no such key (a torchvision model has no `activation`)."""

    lr: float
    clip_norm: float | None = None  # `clip.norm`
    clip_value: float | None = None  # `clip.value`
    init: str | None = None  # `model.init`'s name
    activation: str | None = None  # `model.activation`'s name
    norm: str | None = None  # `model.norm`


def suggestions(first: dict | None, facts: RunFacts) -> list[str]:
    """What usually helps, most likely first: only changes the run has not already made, each
    with the fact of the run that led to it."""
    kind = first["kind"] if first else None
    if kind == "input":
        return ["the data holds NaN or inf: check the dataset (and `data.normalize`), not the network"]
    tips = []
    if kind == "loss":
        tips.append("the loss overflowed on finite outputs: check the targets and the loss (e.g. `bce` "
                    "expects logits, regression targets may need scaling)")
    tips.append(f"lower the learning rate: optimizer.lr={facts.lr / 10:.3g} (it was {facts.lr:.3g})")
    if facts.clip_norm is not None:
        tips.append(f"clip harder: `clip.norm` below {facts.clip_norm:g} (the run clipped the gradient norm to {facts.clip_norm:g})")
    elif facts.clip_value is not None:
        tips.append(f"clip by norm instead: `clip: {{norm: 1.0}}` (the run clipped each element to "
                    f"+-{facts.clip_value:g}, which bounds no layer's total step)")
    else:
        tips.append("clip gradients: `clip: {norm: 1.0}` (the run did not clip)")
    tips += _init_tips(facts)
    return tips


def _init_tips(facts: RunFacts) -> list[str]:
    tips = []
    fitting = next((f for f in FITTING_INIT if facts.activation in f[0]), None)
    if facts.init is not None and fitting is not None:
        _, best, fits, why = fitting
        if facts.init not in fits:
            tips.append(f"start from another initializer: `model.init: {best}` ({why}; the run used "
                        f"`{facts.init}` with `{facts.activation}`)")
    elif facts.init is not None and facts.activation is None:
        tips.append(f"start from another initializer than the run's `model.init: {facts.init}`")
    if facts.norm == "none":
        tips.append("add `model.norm: batch` (the run had no normalization layers)")
    return tips
