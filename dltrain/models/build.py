"""Build a model for the data it will see, and summarize it."""

from __future__ import annotations

from dltrain.models.registry import ARCHITECTURES


def output_size(task: str, num_classes: int | None, target_dim: int, loss_name: str) -> int:
    """Logits per class for cross-entropy, one logit for binary cross-entropy, else the target width."""
    if task == "classification":
        return 1 if loss_name == "bce" else int(num_classes)
    return target_dim


def build_model(spec, input_shape: tuple[int, ...], outputs: int):
    return ARCHITECTURES.build(spec, tuple(input_shape), outputs)


def summarize(model, input_shape: tuple[int, ...]) -> list[dict]:
    """One row per leaf module: name, type, output shape, parameter count (from a 2-sample forward)."""
    import torch

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
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros(2, *input_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows
