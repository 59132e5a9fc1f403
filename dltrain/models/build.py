"""Build a model for the data it will see, and summarize it."""

from __future__ import annotations

from dltrain.core.errors import Problem
from dltrain.models.forward import dry_forward
from dltrain.models.registry import (
    ARCHITECTURES,
    LAYOUT_SHAPES,
    accepted_layouts,
    layout_of,
    made_for,
)

# Said with the suggestion when an architecture does not fit data of this layout.
LAYOUT_HINTS = {"flat": "digits are images for cnn and resnet unless data.as_images is false"}


def output_size(task: str, num_classes: int | None, target_dim: int, loss_name: str) -> int:
    """Logits per class for cross-entropy, one logit for binary cross-entropy, else the target width."""
    if task == "classification":
        return 1 if loss_name == "bce" else int(num_classes)
    return target_dim


def takes_images_only(arch: str) -> bool:
    """Whether data that can be flat or images (digits) should come as images for this architecture."""
    return accepted_layouts(arch) == ("image",)


def build_model(spec, input_shape: tuple[int, ...], outputs: int):
    return ARCHITECTURES.build(spec, tuple(input_shape), outputs)


def fit_problems(spec, data_name: str, input_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> list[Problem]:
    """Why this architecture cannot take this data (nothing when it can), before anything is built."""
    problems = []
    layout = layout_of(tuple(input_shape))
    wanted = accepted_layouts(spec.arch)
    if layout not in wanted:
        expected = " or ".join(f"{w} {LAYOUT_SHAPES[w]}" for w in wanted)
        problems.append(Problem("model.arch", f"`{spec.arch}` takes {expected} inputs, but `{data_name}` gives "
                                f"{layout} samples of shape {tuple(input_shape)}; "
                                f"for this data use {_suggest(layout)}"))
    per_step = len(target_shape) == 2  # (T, k): one target per time step
    sequence_out = getattr(spec, "output", "last") == "sequence"
    if sequence_out != per_step:
        message = ("output: sequence predicts one value per time step, but `{}` has one target per sequence; "
                   "use output: last") if sequence_out else (
                   "`{}` has one target per time step; use {} with output: sequence")
        problems.append(Problem("model.output", message.format(data_name, _names(made_for("sequence")))))
    return problems


def _suggest(layout: str) -> str:
    names = _names(made_for(layout)) or "mlp"
    return f"{names} ({LAYOUT_HINTS[layout]})" if layout in LAYOUT_HINTS else names


def _names(names: list[str]) -> str:
    """[a, b, c] -> 'a, b or c'."""
    return " or ".join(filter(None, [", ".join(names[:-1]), names[-1]])) if names else ""


def build_for_data(spec, data, outputs: int):
    """Build (the fit was checked with the data: fit_problems), then load/freeze as `from`/`freeze` say.
    Returns (model, transfer record)."""
    from dltrain.models.transfer import apply_transfer
    model = build_model(spec, data.input_shape, outputs)
    return model, apply_transfer(model, spec, data.input_shape)


def summarize(model, input_shape: tuple[int, ...]) -> list[dict]:
    """One row per leaf module: name, type, output shape, parameter count (from a 2-sample forward)."""

    rows: list[dict] = []
    hooks = []

    def record(name):
        def hook(module, inputs, output):
            shape = tuple(output.shape) if hasattr(output, "shape") else None
            params = sum(p.numel() for p in module.parameters(recurse=False))
            rows.append({"name": name, "type": type(module).__name__,
                         "output_shape": ["B", *shape[1:]] if shape else None, "params": params})
        return hook

    for name, module in model.named_modules():
        if name and not list(module.children()):
            hooks.append(module.register_forward_hook(record(name)))
    try:
        dry_forward(model, input_shape)
    finally:
        for h in hooks:
            h.remove()
    return rows
