"""Transfer learning: load weights from an earlier run (`model.from`), freeze parameters, reset the head.

Checkpoints are read with torch.load(weights_only=True) only: plain tensors, never pickled objects.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from dltrain.core.errors import Problem, RecipeError, did_you_mean
from dltrain.models.forward import head_prefix


def resolve_source(text: str) -> Path:
    """A checkpoint file; a run directory (its checkpoints/best.pt, else last.pt); or a recipe's name
    such as runs/transfer-a, meaning the newest runs/transfer-a-<time>-<id> that has a checkpoint."""
    from dltrain.core.errors import UsageError
    from dltrain.rundir import layout
    from dltrain.rundir.reader import find_run

    path = Path(text)
    if path.is_file():
        return path
    try:
        run = find_run(text, path.parent, where=lambda r: r.weights_file is not None)
    except UsageError as err:
        raise RecipeError([Problem("model.from", f"{err} (expected a checkpoint file, a run directory, or a "
                                   "recipe's name: run that recipe first)")]) from None
    if run.weights_file is None:
        raise RecipeError([Problem("model.from", f"{path} has no {layout.CHECKPOINTS}/{layout.BEST} or "
                                   f"{layout.CHECKPOINTS}/{layout.LAST}; expected a run directory or a checkpoint file")])
    return run.weights_file


def read_state_dict(path: Path, key: str = "model.from") -> dict:
    """The model's tensors from a dltrain checkpoint or a plain state-dict file."""
    import torch
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, or needs pickled objects: refuse either way
        raise RecipeError([Problem(key, f"cannot read {path} as plain tensors (torch.load weights_only=True): "
                                   f"{type(exc).__name__}: {str(exc).splitlines()[0]}")]) from None
    if isinstance(payload, dict) and isinstance(payload.get("learner"), dict):
        payload = payload["learner"].get("model")  # a dltrain checkpoint
    elif isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise RecipeError([Problem(key, f"{path} holds no model state dict (name -> tensor)")])
    return payload


def shape_problems(own: dict, state: dict, skip: set = frozenset()) -> list[tuple[str, str]]:
    """(name, what is wrong) for every parameter where `state` does not fit `own` (ignoring `skip`)."""
    problems = []
    for name in own:
        if name in skip:
            continue
        if name not in state:
            problems.append((name, f"{name} is missing from the checkpoint"))
        elif tuple(state[name].shape) != tuple(own[name].shape):
            problems.append((name, f"{name}: checkpoint {list(state[name].shape)}, model {list(own[name].shape)}"))
    problems += [(name, f"{name} is in the checkpoint but not in the model") for name in state if name not in own]
    return problems


def describe(problems: list[tuple[str, str]]) -> str:
    return "; ".join(text for _, text in problems)


def is_head(name: str, head: str) -> bool:
    return name == head or name.startswith(head + ".")


def apply_transfer(model, spec, input_shape) -> dict:
    """Load (`from`), then freeze (`freeze`). Returns what was done, for run.json. Raises RecipeError."""
    if spec.from_ is None and spec.freeze is None:
        return {}
    head = head_prefix(model, input_shape)
    record: dict = {"head": head}
    if spec.from_ is not None:
        record.update(_load(model, spec, head))
    if spec.freeze is not None:
        record.update(_freeze(model, spec.freeze, head))
    record["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return record


def _load(model, spec, head: str) -> dict:
    source = resolve_source(spec.from_)
    state = read_state_dict(source)
    own = model.state_dict()
    skip = {k for k in own if is_head(k, head)} if spec.reset_head else set()
    state = {k: v for k, v in state.items() if not (spec.reset_head and is_head(k, head))}
    problems = shape_problems(own, state, skip)
    if problems:
        hint = ""
        if not spec.reset_head and all(is_head(name, head) for name, _ in problems):
            hint = f" (only the head `{head}` differs: set model.reset_head: true to train a new one)"
        raise RecipeError([Problem("model.from", f"{source} does not fit this model: {describe(problems)}{hint}")])
    model.load_state_dict(state, strict=False)
    return {"from": str(source.resolve()), "loaded": sorted(state), "reset_head": sorted(skip)}


def _freeze(model, freeze, head: str) -> dict:
    names = [name for name, _ in model.named_parameters()]
    if freeze == "all_but_head":
        frozen = {n for n in names if not is_head(n, head)}
    else:
        frozen = set()
        for pattern in freeze:
            matched = fnmatch.filter(names, pattern)
            if not matched:
                raise RecipeError([Problem("model.freeze", f"`{pattern}` matches no parameter{did_you_mean(pattern, names)} "
                                           f"(parameters: {', '.join(names)})")])
            frozen.update(matched)
    for name, param in model.named_parameters():
        if name in frozen:
            param.requires_grad_(False)
    _batchnorm_in_inference_mode(model)
    return {"frozen": sorted(frozen), "frozen_parameters": sum(p.numel() for n, p in model.named_parameters()
                                                               if n in frozen)}


def _batchnorm_in_inference_mode(model) -> None:
    """A batch-norm layer whose parameters are all frozen uses and keeps its running statistics
    (as Keras does for frozen layers): otherwise the statistics drift while the weights stay put."""
    from torch import nn
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and params and not any(p.requires_grad for p in params):
            module.register_forward_pre_hook(_inference_mode)


def _inference_mode(module, inputs) -> None:
    module.training = False  # this module only; returning None keeps the inputs as they are
