"""The architecture registry; `model.arch` picks the entry.

Every architecture shares the transfer-learning keys of `ModelSpec` and declares, at registration,
which input layouts it accepts (the fact `accepts`), so that an architecture that does not fit the
data is a recipe error before anything is built.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, model_validator

from dltrain.core.errors import KeysError
from dltrain.core.registry import Registry, Spec

# The layout of one sample, told apart by rank: (F,) flat features, (T, F) a sequence of T steps,
# (C, H, W) an image.
Layout = Literal["flat", "sequence", "image"]
LAYOUTS = dict(zip((1, 2, 3), get_args(Layout)))
LAYOUT_SHAPES = {"flat": "(features,)", "sequence": "(time, features)", "image": "(channels, height, width)"}


def layout_of(input_shape: tuple[int, ...]) -> str:
    return LAYOUTS.get(len(input_shape), f"{len(input_shape)}-d")


class ModelSpec(Spec):
    """Keys every architecture shares: transfer learning from an earlier run."""

    # `from` is a Python keyword: the field is `from_`, the recipe key `from`
    from_: str | None = Field(default=None, alias="from")  # a run directory or a checkpoint file
    freeze: list[str] | Literal["all_but_head"] | None = None  # parameter-name globs, or all_but_head
    reset_head: bool = False  # keep the head freshly initialized instead of loading it

    @model_validator(mode="after")
    def _transfer_keys_fit(self):
        if self.reset_head and self.from_ is None:
            raise KeysError(("reset_head", "from"), "reset_head: true needs `from` (a run directory or checkpoint to load)")
        if isinstance(self.freeze, list) and not self.freeze:
            raise KeysError(("freeze",), "freeze is an empty list; expected parameter-name globs, all_but_head, or null")
        return self


# accepts: the layouts an architecture takes, the one it is made for first (suggested for that
# data when another architecture does not fit); empty for `custom`, whose inputs only it knows.
ARCHITECTURES = Registry("architecture", tag="arch", base=ModelSpec, facts={"accepts": tuple[Layout, ...]})


def accepted_layouts(arch: str) -> tuple[str, ...]:
    return ARCHITECTURES.entry(arch).facts["accepts"] or get_args(Layout)


def made_for(layout: str) -> list[str]:
    """The architectures made for this layout (those that list it first)."""
    return [e.name for e in ARCHITECTURES.entries() if e.facts["accepts"][:1] == (layout,)]
