"""Build a model for the data it will see, and summarize it."""

from __future__ import annotations

from dltrain.core.errors import Problem, RecipeError
from dltrain.models.forward import dry_forward
from dltrain.models.registry import (
    ARCHITECTURES,
    LAYOUT_SHAPES,
    accepted_layouts,
    layout_of,
)

# What to suggest when an architecture does not fit the data's layout.
SUGGEST = {"flat": "mlp (digits are images for cnn and resnet unless data.as_images is false)", "sequence": "rnn, lstm or gru",
           "image": "cnn, resnet or torchvision"}


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


def check_fit(spec, data_name: str, input_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> None:
    """An architecture that cannot take this data is a recipe error before anything is built."""
    layout = layout_of(tuple(input_shape))
    wanted = accepted_layouts(spec.arch)
    if layout not in wanted:
        expected = " or ".join(f"{w} {LAYOUT_SHAPES[w]}" for w in wanted)
        raise RecipeError([Problem("model.arch", f"`{spec.arch}` takes {expected} inputs, but `{data_name}` gives "
                                   f"{layout} samples of shape {tuple(input_shape)}; for this data use "
                                   f"{SUGGEST.get(layout, 'mlp')}")])
    per_step = len(target_shape) == 2  # (T, k): one target per time step
    sequence_out = getattr(spec, "output", "last") == "sequence"
    if sequence_out != per_step:
        message = ("output: sequence predicts one value per time step, but `{}` has one target per sequence; "
                   "use output: last") if sequence_out else (
                   "`{}` has one target per time step; use rnn, lstm or gru with output: sequence")
        raise RecipeError([Problem("model.output", message.format(data_name))])


def build_for_data(spec, data, outputs: int):
    """Check the fit, build, then load/freeze as `from`/`freeze` say. Returns (model, transfer record)."""
    from dltrain.models.transfer import apply_transfer
    check_fit(spec, data.name, data.input_shape, data.target_shape)
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
