"""From a validated Recipe to built objects: device, data, model, loss, loaders. The only reader of the recipe below the verbs."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from dltrain.components import LOSSES
from dltrain.core.errors import DataError, Problem, RecipeError
from dltrain.core.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS, SPLITS
from dltrain.core.words import plural
from dltrain.data import DataBundle, prepare
from dltrain.recipe.schema import Recipe


@dataclass
class Built:
    """Everything a run needs, built from the recipe (the loop never sees the recipe)."""

    recipe: Recipe
    device: object
    data: DataBundle
    model: object
    loss_name: str
    loss_fn: object
    monitor: str
    mode: str
    min_delta: float  # what counts as an improvement, shared by early stopping, best.pt and the summary
    loaders: dict = field(default_factory=dict)
    transfer: dict = field(default_factory=dict)  # what model.from loaded and model.freeze froze
    augment: object = None  # training-batch augmentation (data.augment), or None


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str):
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RecipeError([Problem("device", f"`{name}` asked for, but CUDA is not available on this machine; "
                                       "expected auto or cpu here")])
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise RecipeError([Problem("device", f"`{name}`: this machine has {plural(torch.cuda.device_count(), 'CUDA device')}")])
    if name == "mps" and not torch.backends.mps.is_available():
        raise RecipeError([Problem("device", "`mps` asked for, but Apple's MPS backend is not available here")])
    return torch.device(name)


def _task_checks(recipe: Recipe, data: DataBundle, problems: list[Problem]) -> tuple[str, str, str]:
    """Checks that need to know the task: loss, monitored metrics. Returns (loss, monitor, mode)."""
    loss_name = recipe.loss.name if recipe.loss is not None else (
        "cross_entropy" if data.task == "classification" else "mse")
    loss_task = LOSSES.entry(loss_name).facts["task"]
    if loss_task != data.task:
        fits = sorted(e.name for e in LOSSES.entries() if e.facts["task"] == data.task)
        problems.append(Problem("loss", f"`{loss_name}` is a {loss_task} loss, but `{recipe.data.name}` is a "
                                f"{data.task} task; expected one of: {', '.join(fits)}"))
    if loss_name == "bce" and data.task == "classification" and data.num_classes != 2:
        problems.append(Problem("loss", f"`bce` needs exactly 2 classes; this data has {data.num_classes} "
                                "(use cross_entropy, or data.classes to keep two)"))
    metrics = CLASSIFICATION_METRICS if data.task == "classification" else REGRESSION_METRICS
    es = recipe.train.early_stopping
    monitor, mode = (es.monitor, es.mode) if es else (("val_loss" if data.val else "train_loss"), "min")
    watched = [("train.early_stopping.monitor", monitor)] if es else []
    if recipe.schedule.name == "plateau":
        watched.append(("schedule.monitor", recipe.schedule.monitor))
    for key, name in watched:
        split, _, metric = name.partition("_")
        if metric not in metrics:
            problems.append(Problem(key, f"`{name}` is not recorded for a {data.task} task "
                                    f"(recorded: {', '.join(f'{s}_{m}' for s in SPLITS for m in metrics)})"))
        elif split == "val" and data.val is None:
            problems.append(Problem(key, f"`{name}` needs a validation split, but data.val_fraction is 0"))
    return loss_name, monitor, mode


@dataclass
class Checked:
    """The data, and what the checks that need it found."""

    device: object
    data: DataBundle
    loss_name: str
    monitor: str
    mode: str
    problems: list[Problem]


def check_with_data(recipe: Recipe, skip: frozenset[str] = frozenset()) -> Checked:
    """Prepare the data and run every check that needs it, collecting all problems rather than
    stopping at the first: the device, the loss and monitored metrics against the task, precision,
    the architecture's fit, the augmentations. `skip`: top-level sections whose own schema failed
    (the recipe holds stand-ins there, so what the checks say about them is left out)."""
    from dltrain.data.augment import augment_problems
    from dltrain.models.build import fit_problems, takes_images_only

    problems: list[Problem] = []
    try:
        device = resolve_device(recipe.device)
    except RecipeError as err:
        problems += err.problems
        device = None
    seed_everything(recipe.seed)
    data = prepare(recipe.data, recipe.seed, images=takes_images_only(recipe.model.arch))
    loss_name, monitor, mode = _task_checks(recipe, data, problems)
    if recipe.train.precision == "fp16" and device is not None and device.type != "cuda":
        problems.append(Problem("train.precision", "fp16 mixed precision needs a CUDA device; use bf16 on the CPU"))
    problems += fit_problems(recipe.model, data.name, data.input_shape, data.target_shape)
    problems += augment_problems(recipe.data.augment, data.input_shape)
    kept = [p for p in problems if p.path.split(".")[0] not in skip]
    return Checked(device, data, loss_name, monitor, mode, kept)


def load_checked(path, overrides: list[str] = ()) -> Recipe:
    """The recipe at `path`, or a RecipeError with every problem: the schema's, and, when the data
    can still be prepared (no problem in `data` or `seed`), those of the checks that need the data
    in the sections the schema passed (a typo in `optimizer` and a loss that misfits the task, both)."""
    from dltrain.recipe.load import load_recipe, stand_in_recipe
    try:
        return load_recipe(path, overrides)
    except RecipeError as err:
        schema = err
    stand_in = stand_in_recipe(path, overrides, schema)
    if stand_in is None:
        raise schema
    try:
        checked = check_with_data(stand_in, frozenset(problem_sections(schema)))
    except (DataError, RecipeError):  # the data cannot be read: the schema's problems are the report
        raise schema from None
    raise RecipeError(schema.problems + checked.problems, schema.source) from None


def problem_sections(error: RecipeError) -> set[str]:
    return {p.path.split(".")[0] for p in error.problems}


def build(recipe: Recipe) -> Built:
    """Data, model and loss for a recipe (the optimizer is made in `execute`). Raises RecipeError/DataError."""
    from dltrain.data.augment import build_augment
    from dltrain.models.build import build_for_data, output_size

    checked = check_with_data(recipe)
    if checked.problems:
        raise RecipeError(checked.problems)
    device, data, loss_name = checked.device, checked.data, checked.loss_name
    seed_everything(recipe.seed)  # model init does not depend on how much randomness the data used
    outputs = output_size(data.task, data.num_classes, data.target_dim, loss_name)
    model, transfer = build_for_data(recipe.model, data, outputs)
    model = model.to(device)
    augment = build_augment(recipe.data.augment, data.input_shape, device, recipe.seed)
    loss_spec = recipe.loss or LOSSES.entry(loss_name).model(name=loss_name)
    loss_fn = LOSSES.build(loss_spec).to(device)
    min_delta = recipe.train.early_stopping.min_delta if recipe.train.early_stopping else 0.0
    built = Built(recipe, device, data, model, loss_name, loss_fn, checked.monitor, checked.mode, min_delta,
                  transfer=transfer, augment=augment)
    built.loaders = _loaders(data, device, recipe.seed)
    return built


def _loaders(data: DataBundle, device, seed: int) -> dict:
    import torch

    from dltrain.data.loader import ArrayLoader

    def tensors(split):
        x = torch.from_numpy(split.x).to(device)
        y = torch.from_numpy(split.y).to(device)
        return x, y

    generator = torch.Generator().manual_seed(seed + 1)  # data order: its own stream, saved with checkpoints
    loaders = {"train": ArrayLoader(*tensors(data.train), data.batch_size, shuffle=True, generator=generator),
               "generator": generator}
    eval_batch = max(data.batch_size, 1024)  # evaluation has no gradients: bigger batches are free
    for name in ("val", "test"):
        split = getattr(data, name)
        loaders[name] = ArrayLoader(*tensors(split), eval_batch, shuffle=False) if split is not None else None
    return loaders
