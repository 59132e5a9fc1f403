"""One forward pass on zeros: how dltrain learns what a built model does before any run (its layers'
output shapes, its head, whether it takes the data's inputs at all)."""

from __future__ import annotations

from dltrain.core.errors import Problem, RecipeError


def dry_forward(model, input_shape: tuple[int, ...]):
    """One forward of 2 zero samples, without gradients and in eval mode (so batch-norm statistics and
    dropout are untouched), for hooks to record what they see; the training mode is restored."""
    import torch
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            first = next(model.parameters(), None)
            device = first.device if first is not None else "cpu"
            return model(torch.zeros(2, *input_shape, device=device))
    finally:
        model.train(was_training)


def probe_forward(model, input_shape, key: str, what: str):
    """`dry_forward`, where a model that cannot take this data is a recipe problem at `key`."""
    try:
        return dry_forward(model, input_shape)
    except Exception as exc:  # any failure means: this model does not fit this input
        raise RecipeError([Problem(key, f"{what} cannot take inputs of shape {tuple(input_shape)}: "
                                   f"{type(exc).__name__}: {exc}")]) from None


def head_prefix(model, input_shape) -> str:
    """The name of the model's head: the last module with its own parameters to run in a forward pass.
    (For dltrain's architectures that is `head`; for torchvision's resnet `net.fc`, for vgg `net.classifier.6`.)"""
    order: list[str] = []
    hooks = [module.register_forward_hook(lambda *_, name=name: order.append(name))
             for name, module in model.named_modules()
             if name and any(True for _ in module.parameters(recurse=False))]
    try:
        dry_forward(model, input_shape)
    finally:
        for hook in hooks:
            hook.remove()
    if not order:
        raise RecipeError([Problem("model", "the model has no parameters: nothing to train")])
    return order[-1]
