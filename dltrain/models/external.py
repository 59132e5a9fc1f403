"""Architectures from outside dltrain: any torchvision classification model, or the user's own class.

`custom` imports and runs the user's Python code named in the recipe (`target: package.module:Class`).
That is the one place a recipe can name code to run; treat a recipe with `arch: custom` like a script.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from dltrain.core.errors import KeysError, Problem, RecipeError, did_you_mean
from dltrain.models.forward import head_prefix, probe_forward
from dltrain.models.registry import ARCHITECTURES


def classification_models() -> list[str]:
    import torchvision
    return torchvision.models.list_models(module=torchvision.models)  # classification only, not detection etc.


def _check_torchvision(spec) -> None:
    names = classification_models()
    if spec.model not in names:
        raise KeysError(("model",), f"unknown torchvision classification model `{spec.model}`{did_you_mean(spec.model, names)} "
                         f"(e.g. resnet18, mobilenet_v3_small, efficientnet_b0; all: torchvision.models.list_models())")
    if spec.weights is not None and not Path(spec.weights).is_file():
        raise KeysError(("weights",), f"weights file not found: {spec.weights} (weights are read from a local file only; "
                         "download them yourself, e.g. from the URL in torchvision's docs)")


@ARCHITECTURES.register("torchvision", accepts=("image",), check=_check_torchvision,
                        description="any torchvision classification model by name (`model`), head sized to the task; "
                                    "`weights`: a local state-dict file")
def torchvision_model(input_shape, outputs, /, *, model: str = "resnet18", weights: str | None = None):
    import torch
    import torchvision
    from torch import nn

    channels = input_shape[0]
    if channels not in (1, 3):
        raise RecipeError([Problem("model.model", f"torchvision models take 3-channel images; this data has "
                                   f"{channels} channels (1-channel images are repeated to 3)")])
    net = torchvision.models.get_model(model, weights=None, num_classes=outputs)

    class Torchvision(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)  # grayscale -> the 3 channels the model was designed for
            return self.net(x)

    wrapper = Torchvision()
    probe_forward(wrapper, input_shape, "model.model", f"`{model}`")
    if weights is not None:
        head = head_prefix(wrapper, input_shape).removeprefix("net.")
        load_pretrained(net, Path(weights), head)
    return wrapper


def load_pretrained(net, path: Path, head: str) -> None:
    """Load a torchvision state dict; the head is skipped where its shape was resized to the task."""
    from dltrain.models.transfer import describe, read_state_dict, shape_problems
    state = read_state_dict(path, "model.weights")
    own = net.state_dict()
    resized = {k for k in state if k.startswith(head + ".") and k in own and own[k].shape != state[k].shape}
    state = {k: v for k, v in state.items() if k not in resized}
    problems = shape_problems(own, state, skip=resized)
    if problems:
        raise RecipeError([Problem("model.weights", f"{path} does not fit this model: {describe(problems)}")])
    net.load_state_dict(state, strict=False)


def _check_custom(spec) -> None:
    cls = resolve_target(spec.target)
    try:
        inspect.signature(cls).bind_partial(**spec.kwargs)
    except TypeError as exc:
        raise KeysError(("kwargs",), f"kwargs do not fit {spec.target}: {exc}") from None
    except ValueError:
        pass  # no inspectable signature (a C extension): the call itself will say


def resolve_target(target: str):
    """'package.module:Class' -> the class. Imports (runs) the user's module."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise KeysError(("target",), f"target `{target}`: expected package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise KeysError(("target",), f"target `{target}`: cannot import `{module_name}` ({exc}); is its folder on PYTHONPATH?") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(module) if not n.startswith("_")]
            raise KeysError(("target",), f"target `{target}`: `{module_name}` has no `{attr}`{did_you_mean(attr, names)}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise KeysError(("target",), f"target `{target}` is not a class or function")
    return obj


@ARCHITECTURES.register("custom", accepts=(), check=_check_custom,
                        description="your own nn.Module: `target: package.module:Class` plus `kwargs` (RUNS YOUR CODE); "
                                    "gets input_shape/outputs if its constructor takes them")
def custom(input_shape, outputs, /, *, target: str, kwargs: dict[str, Any] = {}):
    from torch import nn
    cls = resolve_target(target)
    try:
        params = inspect.signature(cls).parameters
    except ValueError:
        params = {}
    supplied = {k: v for k, v in (("input_shape", tuple(input_shape)), ("outputs", outputs)) if k in params}
    model = cls(**supplied, **kwargs)
    if not isinstance(model, nn.Module):
        raise RecipeError([Problem("model.target", f"{target} returned {type(model).__name__}, not a torch.nn.Module")])
    probe_forward(model, input_shape, "model.target", target)
    return model
