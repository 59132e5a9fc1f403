"""Augmentations: random transforms of whole training batches with tensor ops, on the batch's device.

Each factory returns `transform(x, generator) -> x` for a batch x of shape (B, C, H, W) (images) or
any shape (noise). Randomness comes from one torch.Generator on the data's device, seeded from the
recipe's seed and saved with checkpoints: the same seed gives the same augmented batches.
Only training batches are augmented (the Learner applies it in train_epoch); evaluation never is.
Images are normalized before augmentation, so padding and rotated-in corners are 0: the mean pixel.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dltrain.core.errors import Problem, RecipeError
from dltrain.core.registry import Registry
from dltrain.core.types import NonNegativeFloat, NonNegativeInt, PositiveInt

# images_only: the transform needs (C, H, W) samples
AUGMENTATIONS = Registry("augmentation", facts={"images_only": bool})
register = AUGMENTATIONS.register
Probability = Annotated[float, Field(ge=0, le=1)]


@register("hflip", images_only=True, description="mirror left-right with probability p")
def hflip(*, p: Probability = 0.5):
    import torch

    def transform(x, generator):
        flip = torch.rand(x.shape[0], device=x.device, generator=generator) < p  # (B,)
        return torch.where(flip[:, None, None, None], x.flip(3), x)

    return transform


def _shift(x, generator, pad: int):
    """Zero-pad by `pad` and cut out an image of the original size at a random offset per sample:
    a random translation by up to `pad` pixels each way. The (2 pad + 1)^2 possible crops are a
    strided view of the padded batch (unfold: no copy); one indexing op picks each sample's crop."""
    import torch
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # (B, C, H + 2p, W + 2p)
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p + 1, 2p + 1, H, W), a view
    dy = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    return windows[torch.arange(b, device=x.device), :, dy, dx]  # (B, C, H, W)


@register("random_crop", images_only=True, description="pad by `padding` zeros, crop back to `size` at a random place "
                                     "(size: the image size; validation images are not cropped)")
def random_crop(*, size: PositiveInt | None = None, padding: NonNegativeInt = 4):
    def transform(x, generator):  # size is checked against the images in build_augment
        return _shift(x, generator, padding) if padding else x

    return transform


@register("translate", images_only=True, description="shift by up to `pixels` in each direction, filling with zeros")
def translate(*, pixels: PositiveInt = 2):
    def transform(x, generator):
        return _shift(x, generator, pixels)

    return transform


@register("rotation", images_only=True,
          description="rotate by a random angle in [-degrees, degrees] (bilinear, zero fill)")
def rotation(*, degrees: Annotated[float, Field(gt=0, le=180)] = 15.0):
    import math

    import torch

    def transform(x, generator):
        b = x.shape[0]
        angle = (torch.rand(b, device=x.device, generator=generator) * 2 - 1) * math.radians(degrees)
        cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (B, 2, 3)
        grid = torch.nn.functional.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    return transform


@register("noise", images_only=False, description="add Gaussian noise N(0, std^2) to every input value")
def noise(*, std: NonNegativeFloat = 0.1):
    import torch

    def transform(x, generator):
        return x + std * torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)

    return transform


class Augment:
    """The recipe's augmentations in order, with their own seeded generator."""

    def __init__(self, transforms: list, device, seed: int):
        import torch
        self.transforms = transforms
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, x):
        for transform in self.transforms:
            x = transform(x, self.generator)
        return x

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def augment_problems(specs: list, input_shape: tuple[int, ...]) -> list[Problem]:
    """Why an augmentation cannot apply to samples of this shape (nothing when all can)."""
    problems = []
    for i, spec in enumerate(specs):
        if AUGMENTATIONS.entry(spec.name).facts["images_only"] and len(input_shape) != 3:
            problems.append(Problem(f"data.augment.{i}", f"`{spec.name}` transforms images (C, H, W), but the "
                                    f"samples have shape {tuple(input_shape)}; for other data use noise"))
        elif spec.name == "random_crop" and spec.size is not None and tuple(input_shape[1:]) != (spec.size, spec.size):
            problems.append(Problem(f"data.augment.{i}.size", f"{spec.size} differs from the image size "
                                    f"{tuple(input_shape[1:])}; validation and test images are not cropped, so the "
                                    "crop must keep the size (leave size out, use padding for the shift)"))
    return problems


def build_augment(specs: list, input_shape: tuple[int, ...], device, seed: int) -> Augment | None:
    """None when there is nothing to do; RecipeError when an augmentation cannot apply to this data."""
    if not specs:
        return None
    problems = augment_problems(specs, input_shape)
    if problems:
        raise RecipeError(problems)
    return Augment([AUGMENTATIONS.build(spec) for spec in specs], device, seed + 2)  # its own stream
