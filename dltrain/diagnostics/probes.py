"""Per-layer statistics, collected with hooks while a `Probe` is armed.

A *layer* is a module with a weight matrix of its own (a direct parameter with ndim >= 2:
Linear, Conv, LSTM, GRU, Embedding); its depth is its place in the forward pass (1 = nearest
the input). An *activation* is a module of a registered activation's type (or of one in
`UNREGISTERED`), probed as its registry entry says; it is attributed to the layer that ran just
before it ("layer 3's ReLUs").

While armed, hooks compute statistics as 0-d tensors on the model's device; nothing is read
back to the host until `Reading.to_host()` stacks them into one tensor and copies it once.
Disarmed, there are no hooks at all: the training step pays nothing.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from dltrain.components.activations import ACTIVATIONS, DEAD_UNITS
from dltrain.components.activations import Probe as ActivationProbe

SATURATION_MARGIN = 0.01  # an output within this of a bound counts as saturated


# ---------------------------------------------------------------------------------------------
# statistics of one activation output, by module type


def _unit_dim(output: torch.Tensor, after_conv: bool) -> int:
    """Which dimension holds the units: channels for conv maps, the last one for (B, T, F) sequences."""
    if output.dim() == 2 or (output.dim() >= 3 and after_conv):
        return 1
    return output.dim() - 1


def moment_stats(output: torch.Tensor, after_conv: bool) -> dict[str, torch.Tensor]:
    value = output.detach()
    if value.numel() < 2:
        return {"mean": value.float().mean(), "std": value.new_zeros((), dtype=torch.float32)}
    std, mean = torch.std_mean(value.float())
    return {"mean": mean, "std": std}


def dead_stats(output: torch.Tensor, after_conv: bool) -> dict[str, torch.Tensor]:
    """A unit is dead on this batch when it outputs zero for every sample (and every position)."""
    stats = moment_stats(output, after_conv)
    value = output.detach()
    dim = _unit_dim(value, after_conv)
    fired = value > 0
    if value.dim() > 2 or dim != 1:
        fired = fired.movedim(dim, 0).reshape(value.shape[dim], -1).t()  # (everything else, units)
    stats["dead"] = 1.0 - fired.any(dim=0).float().mean()
    return stats


def saturation_stats(low: float, high: float) -> Callable:
    middle, reach = (low + high) / 2, (high - low) / 2 - SATURATION_MARGIN

    def stats(output: torch.Tensor, after_conv: bool) -> dict[str, torch.Tensor]:
        result = moment_stats(output, after_conv)
        # fraction of outputs (sample x unit) within the margin of either bound
        result["saturated"] = ((output.detach().float() - middle).abs() >= reach).float().mean()
        return result
    return stats


# Activation modules that architectures bring from outside the registry (torchvision's MobileNets).
UNREGISTERED: dict[type, ActivationProbe] = {nn.ReLU6: DEAD_UNITS}


@functools.cache
def _probes_by_type() -> dict[type, ActivationProbe]:
    """Each registered activation's module type -> the probe its entry declares (one module built per entry)."""
    found = dict(UNREGISTERED)
    for entry in ACTIVATIONS.entries():
        found[type(ACTIVATIONS.build(entry.model()))] = entry.facts["probe"]
    return found


def activation_probe(module: nn.Module) -> ActivationProbe | None:
    by_type = _probes_by_type()
    for cls in type(module).__mro__:
        if cls in by_type:
            return by_type[cls]
    return None


def activation_stats(probe: ActivationProbe) -> Callable:
    if probe.kind == "relu":
        return dead_stats
    if probe.kind == "saturating":
        return saturation_stats(*probe.bounds)
    return moment_stats


# ---------------------------------------------------------------------------------------------
# gate saturation of recurrent layers (nn.LSTM, nn.GRU): torch runs them as one fused kernel, so
# the gates are recomputed from the layer's input and weights (only while armed).


def unroll(module: nn.RNNBase, x: torch.Tensor, hx=None) -> tuple[torch.Tensor, dict[str, list[torch.Tensor]]]:
    """Run an LSTM/GRU step by step in plain tensor ops. Returns (output, gate values by name).

    Between stacked layers torch applies dropout in training; this replay leaves it out, so the
    gates of layers above the first are those of the dropout-free network.
    """
    import torch.nn.functional as F

    lstm = module.mode == "LSTM"
    if x.dim() == 2:  # unbatched (T, I)
        x = x.unsqueeze(0 if module.batch_first else 1)
    if not module.batch_first:
        x = x.transpose(0, 1)  # (B, T, I)
    batch, steps, _ = x.shape
    dirs = 2 if module.bidirectional else 1
    hidden = module.hidden_size
    if hx is not None and lstm:
        h0, c0 = hx
    else:
        h0, c0 = hx, None
    gates: dict[str, list[torch.Tensor]] = {}
    layer_input = x
    for layer in range(module.num_layers):
        outputs = []
        for d in range(dirs):
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = getattr(module, "weight_ih" + suffix), getattr(module, "weight_hh" + suffix)
            b_ih = getattr(module, "bias_ih" + suffix) if module.bias else None
            b_hh = getattr(module, "bias_hh" + suffix) if module.bias else None
            k = layer * dirs + d
            h = h0[k].reshape(batch, hidden) if h0 is not None else x.new_zeros(batch, hidden)
            c = c0[k].reshape(batch, hidden) if c0 is not None else x.new_zeros(batch, hidden)
            from_input = F.linear(layer_input, w_ih, b_ih)  # (B, T, gates * H)
            hs: list[torch.Tensor] = [None] * steps  # type: ignore[list-item]
            for t in (range(steps) if d == 0 else reversed(range(steps))):
                from_hidden = F.linear(h, w_hh, b_hh)
                if lstm:
                    i, f, g, o = (from_input[:, t] + from_hidden).chunk(4, dim=1)
                    i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
                    c = f * c + i * g
                    h = o * c.tanh()
                    named = {"input": i, "forget": f, "cell": g, "output": o}
                else:
                    xr, xz, xn = from_input[:, t].chunk(3, dim=1)
                    hr, hz, hn = from_hidden.chunk(3, dim=1)
                    r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
                    n = (xn + r * hn).tanh()
                    h = (1 - z) * n + z * h
                    named = {"reset": r, "update": z, "new": n}
                for name, value in named.items():
                    gates.setdefault(name, []).append(value)
                hs[t] = h
            outputs.append(torch.stack(hs, dim=1))
        layer_input = torch.cat(outputs, dim=2)
    out = layer_input if module.batch_first else layer_input.transpose(0, 1)
    return out, gates


TANH_GATES = {"cell", "new"}


def gate_stats(module: nn.Module, inputs: tuple, output) -> dict[str, torch.Tensor]:
    """Fraction of each gate's values within 0.01 of its bounds (sigmoid: 0/1, tanh: -1/1)."""
    x = inputs[0] if inputs else None
    if not isinstance(x, torch.Tensor) or getattr(module, "proj_size", 0):
        return {}  # packed sequences and projected LSTMs are not unrolled
    hx = inputs[1] if len(inputs) > 1 else None
    with torch.no_grad():
        _, gates = unroll(module, x.detach().float(), hx)
    stats = {}
    for name, values in gates.items():
        low, high = ACTIVATIONS.entry("tanh" if name in TANH_GATES else "sigmoid").facts["probe"].bounds
        value = torch.stack(values)
        stats[f"gate_{name}"] = ((value <= low + SATURATION_MARGIN) | (value >= high - SATURATION_MARGIN)).float().mean()
    return stats


# Layers whose internals get their own statistics, by module type.
LAYER_PROBES: dict[type, Callable] = {nn.LSTM: gate_stats, nn.GRU: gate_stats}


def layer_probe(module: nn.Module) -> Callable | None:
    for cls in type(module).__mro__:
        if cls in LAYER_PROBES:
            return LAYER_PROBES[cls]
    return None


# ---------------------------------------------------------------------------------------------
# the probe


def wide_dtype(t: torch.Tensor) -> torch.dtype:
    """float64 for norms (MPS has none: float32 there): a diverging run's 1e20 gradients would
    overflow float32 squares and hide which layer blew up first."""
    return torch.float32 if t.device.type == "mps" else torch.float64


def square_sum(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(wide_dtype(t)).pow(2).sum()


def _is_activation(name: str, module: nn.Module) -> bool:
    """nn.Identity is an activation only where it stands in one (`activation: identity`); elsewhere
    it is a placeholder (a dropout of rate 0, a removed head) and says nothing about training health."""
    return not isinstance(module, nn.Identity) or "activation" in name.rsplit(".", 1)[-1]


def is_layer(module: nn.Module) -> bool:
    return any(p.ndim >= 2 for p in module.parameters(recurse=False))


def is_residual_block(module: nn.Module) -> bool:
    """A module whose output adds its input back (a skip connection): dltrain's own blocks say so
    with `adds_input = True`; torchvision's ResNet blocks are known by type."""
    if getattr(module, "adds_input", False) is True:
        return True
    kind = type(module)
    return kind.__module__ == "torchvision.models.resnet" and kind.__name__ in ("BasicBlock", "Bottleneck")


CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass
class Reading:
    """One set of statistics, still on the device: names/fields beside one value tensor each."""

    step: int
    epoch: int
    kind: str  # "probe" (fixed batch: initialization, chosen epochs, end) or "step" (a training step)
    layers: list[dict]  # host-side facts: index, name, type, params
    activations: list[dict]  # index (layer it follows), name, type, kind
    blocks: list[dict] = field(default_factory=list)  # residual blocks: index, name, first_layer
    values: list[tuple[str, int, str, torch.Tensor]] = field(default_factory=list)  # (section, i, key, 0-d)
    phase: str | None = None  # probes: "init", "epoch" or "end"
    loss: torch.Tensor | None = None  # probes: the loss on the fixed batch

    def to_host(self) -> dict:
        """The JSON record; the one device-to-host copy of this reading. Per-parameter norms of a
        layer are combined here (root of the sum of squares), in Python, not as device ops."""
        values = self.values + ([("loss", 0, "loss", self.loss)] if self.loss is not None else [])
        numbers = torch.stack([v.detach().reshape(()) for *_, v in values]).tolist() if values else []
        layers = [dict(row) for row in self.layers]
        activations = [dict(row) for row in self.activations]
        blocks = [dict(row) for row in self.blocks]
        record: dict = {"kind": self.kind}
        if self.phase is not None:
            record["phase"] = self.phase
        record.update(step=self.step, epoch=self.epoch)
        squares: dict[tuple[int, str], float] = {}
        for (section, i, key, _), number in zip(values, numbers):
            if section == "loss":
                record["loss"] = _clean(number)
            elif section == "activations":
                activations[i][key] = _clean(number)
            elif section == "blocks":
                blocks[i][key] = _clean(math.sqrt(number))  # kept as squares: sums over micro-batches
            elif key in NORMS:
                squares[(i, key)] = squares.get((i, key), 0.0) + number * number
            else:
                layers[i][key] = _clean(number)
        for (i, key), total in squares.items():
            layers[i][key] = math.sqrt(total)
        for layer in layers:
            update = layer.pop("update_norm", None)
            if update is not None:
                weight = layer["weight_norm"]
                layer["update_ratio"] = _clean(update / weight if weight > 0 else math.inf)
            for key in NORMS:
                if key in layer:
                    layer[key] = _clean(layer[key])
        record.update(layers=layers, activations=activations)
        if blocks:
            record["blocks"] = blocks
        return record


NORMS = ("weight_norm", "grad_norm", "update_norm")  # given per parameter, reported per layer


def _clean(number: float) -> float | str:
    """JSON has no NaN or infinity: write them as strings the reader turns back into floats."""
    return number if math.isfinite(number) else str(number)


class Probe:
    """Hooks on a model's layers and activations, present only between arm() and disarm()."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.layer_modules = {name: m for name, m in model.named_modules() if is_layer(m)}
        self.activation_modules = {name: m for name, m in model.named_modules()
                                   if name and activation_probe(m) is not None and _is_activation(name, m)}
        self.block_modules = {name: m for name, m in model.named_modules() if is_residual_block(m)}
        self.order: list[str] = []  # layers and activations in forward order (first armed forward)
        self.handles: list = []
        self.layer_stats: dict[str, dict[str, torch.Tensor]] = {}
        self.act_stats: dict[str, dict[str, torch.Tensor]] = {}
        self.block_stats: dict[str, dict[str, torch.Tensor]] = {}  # block -> input_norm, input_grad_norm
        self.branch_of: dict[str, str] = {}  # activation -> the residual block whose branch it is on
        self._outputs: dict[str, torch.Tensor] = {}  # activation outputs of this pass (only with blocks)
        self.grad_norms: dict[str, dict[str, torch.Tensor]] = {}  # layer -> parameter -> gradient norm
        self.before_step: dict[torch.nn.Parameter, torch.Tensor] = {}  # parameter -> copy before the step
        self.keep: bool = False  # keep activations and gradients (for histograms)
        self.kept_activations: dict[str, torch.Tensor] = {}
        self.kept_gradients: dict[str, torch.Tensor] = {}
        self.grad_scale: Callable[[], torch.Tensor | None] = lambda: None
        self.armed = False
        self._copies: list[torch.Tensor] | None = None
        self._parameters: tuple[bool, list] | None = None
        self._seen: list[str] = []

    # -- arming --------------------------------------------------------------------------------

    def arm(self, keep: bool = False) -> None:
        if self.armed:
            return
        self.armed, self.keep = True, keep
        self.layer_stats, self.act_stats, self.grad_norms, self.before_step = {}, {}, {}, {}
        self.block_stats, self.branch_of, self._outputs = {}, {}, {}
        self.kept_activations, self.kept_gradients = {}, {}
        seen: list[str] = []  # modules in the order they run: the first armed pass fixes `order`
        last_conv = [False]

        for name, module in self.layer_modules.items():
            self.handles.append(module.register_forward_hook(self._layer_hook(name, seen, last_conv)))
            for pname, param in module.named_parameters(recurse=False):
                if param.requires_grad:
                    self.handles.append(param.register_post_accumulate_grad_hook(self._grad_hook(name, pname)))
        for name, module in self.activation_modules.items():
            self.handles.append(module.register_forward_hook(self._activation_hook(name, seen, last_conv)))
        for name, module in self.block_modules.items():
            self.handles.append(module.register_forward_pre_hook(self._block_hook(name, seen)))
            self.handles.append(module.register_forward_hook(self._block_output_hook(name)))
        self._seen = seen

    def disarm(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles, self._outputs = [], {}
        if not self.order and self._seen:
            self.order = list(dict.fromkeys(self._seen))
        self.armed = False

    def _layer_hook(self, name: str, seen: list, last_conv: list):
        probe = layer_probe(self.layer_modules[name])

        def hook(module, inputs, output):
            seen.append(name)
            last_conv[0] = isinstance(module, CONV_TYPES)
            if probe is not None:
                self.layer_stats[name] = probe(module, inputs, output)
        return hook

    def _activation_hook(self, name: str, seen: list, last_conv: list):
        stats = activation_stats(activation_probe(self.activation_modules[name]))

        def hook(module, inputs, output):
            seen.append(name)
            if isinstance(output, torch.Tensor):
                self.act_stats[name] = stats(output, last_conv[0])  # the last micro-batch wins
                if self.block_modules:
                    self._outputs[name] = output
                if self.keep:
                    self.kept_activations[name] = output.detach()
        return hook

    def _block_hook(self, name: str, seen: list):
        """The residual stream where it enters a block: its norm, and the norm of the gradient that
        reaches it (the backward signal of a skip-connected net flows along the stream)."""
        def hook(module, args):
            seen.append(name)
            x = args[0] if args else None
            if not isinstance(x, torch.Tensor) or not x.is_floating_point():
                return
            stats = self.block_stats[name] = {"input_norm": square_sum(x)}
            if x.requires_grad:
                def on_grad(grad):
                    stats["input_grad_norm"] = square_sum(self._unscaled(grad))
                x.register_hook(on_grad)
        return hook

    def _block_output_hook(self, name: str):
        """An activation inside a block is on its branch unless its output is the block's output
        (ResNet's ReLU after the addition acts on the stream itself)."""
        def hook(module, args, output):
            for act in self.activation_modules:
                if act.startswith(name + ".") and self._outputs.get(act) is not output:
                    self.branch_of[act] = name
        return hook

    def _unscaled(self, grad: torch.Tensor) -> torch.Tensor:
        scale = self.grad_scale()
        return grad if scale is None else grad / scale

    def _grad_hook(self, layer: str, pname: str):
        def hook(param):
            # fires after each micro-batch's gradient is added to .grad: the last call sees the sum
            grad = param.grad.detach()
            norm = torch.linalg.vector_norm(grad, dtype=wide_dtype(grad))
            scale = self.grad_scale()
            if scale is not None:
                norm = norm / scale  # fp16 loss scaling: record the true gradient
            self.grad_norms.setdefault(layer, {})[pname] = norm
            if self.keep:
                self.kept_gradients[f"{layer}.{pname}"] = grad.float().clone()
        return hook

    # -- around an optimizer step ----------------------------------------------------------------

    def layer_parameters(self) -> list[tuple[int, torch.nn.Parameter]]:
        """(layer position, parameter) for every parameter of every layer, in depth order."""
        if self._parameters is None or not self._parameters[0]:  # cached once the order is known
            pairs = [(i, p) for i, name in enumerate(self.layer_names())
                     for p in self.layer_modules[name].parameters(recurse=False)]
            self._parameters = (bool(self.order), pairs)
        return self._parameters[1]

    def remember_weights(self) -> None:
        """Before the optimizer step: a copy of each layer's parameters, for update/weight ratios."""
        params = [p.detach() for _, p in self.layer_parameters()]
        if self._copies is None or [c.shape for c in self._copies] != [p.shape for p in params]:
            self._copies = [p.clone() for p in params]
        else:
            torch._foreach_copy_(self._copies, params)  # one op, into buffers kept from the last time
        self.before_step = dict(zip((p for _, p in self.layer_parameters()), self._copies))  # by identity

    # -- reading ---------------------------------------------------------------------------------

    def layer_names(self) -> list[str]:
        ordered = [n for n in self.order if n in self.layer_modules]
        return ordered + [n for n in self.layer_modules if n not in ordered]  # never ran: at the end

    def activation_names(self) -> list[str]:
        """Those that ran, in forward order (before the first armed pass: all of them)."""
        if not self.order:
            return list(self.activation_modules)
        return [n for n in self.order if n in self.activation_modules]

    def reading(self, step: int, epoch: int, kind: str) -> Reading:
        """The statistics gathered since arm(), as a Reading (still on the device)."""
        names = self.layer_names()
        layer_index = {name: i + 1 for i, name in enumerate(names)}
        layers, activations, values = [], [], []
        for i, name in enumerate(names):
            module = self.layer_modules[name]
            layers.append({"index": i + 1, "name": name, "type": type(module).__name__,
                           "params": sum(p.numel() for p in module.parameters(recurse=False))})
        entries = self.layer_parameters()
        current = [p.detach() for _, p in entries]
        stepped = bool(self.before_step)
        reference = [self.before_step[p] for _, p in entries] if stepped else current
        # per-parameter norms in two foreach ops; combined per layer in Reading.to_host
        for (i, _), norm in zip(entries, torch._foreach_norm(reference)):
            values.append(("layers", i, "weight_norm", norm))
        if stepped:
            for (i, _), norm in zip(entries, torch._foreach_norm(torch._foreach_sub(current, reference))):
                values.append(("layers", i, "update_norm", norm))
        for i, name in enumerate(names):
            for norm in self.grad_norms.get(name, {}).values():
                values.append(("layers", i, "grad_norm", norm))
            for key, value in self.layer_stats.get(name, {}).items():
                values.append(("layers", i, key, value))
        for j, name in enumerate(self.activation_names()):
            module = self.activation_modules[name]
            follows = 0
            for earlier in self.order[:self.order.index(name)] if name in self.order else []:
                follows = layer_index.get(earlier, follows)
            probed_as = activation_probe(module).kind
            activations.append({"index": follows, "name": name, "type": type(module).__name__, "kind": probed_as})
            for key, value in self.act_stats.get(name, {}).items():
                values.append(("activations", j, key, value))
        blocks = []
        for name in [n for n in self.order if n in self.block_modules]:
            inside = [layer_index[n] for n in names if n.startswith(name + ".")]
            blocks.append({"index": len(blocks) + 1, "name": name, "first_layer": min(inside) if inside else None})
            for key, value in self.block_stats.get(name, {}).items():
                values.append(("blocks", len(blocks) - 1, key, value))
        block_index = {row["name"]: row["index"] for row in blocks}
        for row in activations:
            if row["name"] in self.branch_of:
                row["branch_of"] = block_index[self.branch_of[row["name"]]]
        self.before_step = {}
        return Reading(step, epoch, kind, layers, activations, values=values, blocks=blocks)


def probe_pass(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, probe: Probe, *, step: int = 0,
               epoch: int = 0, keep: bool = False, autocast=None, phase: str = "init") -> Reading:
    """One forward/backward on (x, y) with the probe armed, in training mode, leaving no trace:
    the RNG (dropout), batch-norm running statistics and the gradients are as they were before."""
    import contextlib

    was_training = model.training
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    grads = {p: p.grad for p in model.parameters()}
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if x.is_cuda else None
    model.train()
    for p in model.parameters():
        p.grad = None
    if x.is_floating_point():  # a leaf that wants its gradient: the first residual block's input is the data
        x = x.detach().requires_grad_(True)
    probe.arm(keep=keep)
    try:
        with autocast() if autocast is not None else contextlib.nullcontext():
            loss = loss_fn(model(x), y)
        loss.backward()
    finally:
        probe.disarm()
    reading = probe.reading(step, epoch, "probe")
    reading.phase, reading.loss = phase, loss.detach()
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(buffers[name])
    for p, g in grads.items():
        p.grad = g
    torch.set_rng_state(rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state_all(cuda_rng)
    model.train(was_training)
    return reading


PROBE_BATCH = (64, 1024)  # the fixed probe batch: the training batch size, kept within these bounds


def fixed_batch(loader):
    """The first samples of the training split in stored order (the split itself is a seeded shuffle):
    the same batch at initialization and at every probe epoch, so depth profiles are comparable."""
    size = min(max(loader.batch_size, PROBE_BATCH[0]), PROBE_BATCH[1], loader.n)
    return loader.x[:size], loader.y[:size]
