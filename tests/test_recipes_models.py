"""Every shipped recipe of the architectures issue validates and builds (data, model) without training."""

from __future__ import annotations

from pathlib import Path

import pytest

from dltrain.recipe.load import load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
NEEDS_A_RUN = {"transfer-digits-b", "transfer-digits-b-scratch"}  # B loads from A's run: checked in test_transfer
NAMES = ["cnn-digits", "resnet-digits", "lstm-adding", "gru-adding", "lstm-sine", "gru-sine",
         "transfer-digits-a", "transfer-digits-b", "transfer-digits-b-scratch"]


@pytest.mark.parametrize("name", NAMES)
def test_recipe_validates_and_builds(name):
    from dltrain.builder.objects import build
    recipe = load_recipe(RECIPES / f"{name}.yaml", ["device=cpu"])
    assert recipe.name == name
    if name == "transfer-digits-b-scratch":
        assert recipe.model.from_ is None and recipe.model.freeze is None
    if name not in NEEDS_A_RUN or name.endswith("scratch"):
        built = build(recipe)  # checks that the architecture fits the data, and builds both
        x = built.loaders["val"].x[:3]
        assert built.model(x).shape[0] == 3
