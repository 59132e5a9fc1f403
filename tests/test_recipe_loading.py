"""YAML, extends, overrides, defaults: the recipe contract of RECIPES.md."""

from pathlib import Path

import pytest

from dltrain.core.errors import RecipeError
from dltrain.recipe.load import load_recipe
from dltrain.core.yamlio import parse_yaml
from conftest import REPO, tiny_recipe, write_recipe


def test_scientific_notation_is_a_float():
    value, _ = parse_yaml("lr: 1e-3\nbig: 2E5\nneg: -1.5e-2\nword: e5\n", "x")
    assert value == {"lr": 0.001, "big": 200000.0, "neg": -0.015, "word": "e5"}


def test_extends_deep_merges_and_replaces_lists(tmp_path):
    write_recipe(tmp_path / "base.yaml", tiny_recipe(model={"arch": "mlp", "hidden": [8, 8, 8], "activation": "tanh"}))
    child = write_recipe(tmp_path / "child.yaml", "extends: base.yaml\nmodel: {hidden: [4]}\nseed: 7\n")
    recipe = load_recipe(child)
    assert recipe.model.hidden == [4]  # list replaced, not merged
    assert recipe.model.activation.name == "tanh"  # sibling kept from the base
    assert recipe.seed == 7
    assert recipe.name == "tiny"  # the base names it


def test_extends_cycle_is_an_error(tmp_path):
    write_recipe(tmp_path / "a.yaml", "extends: b.yaml\n")
    write_recipe(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(RecipeError, match="extends cycle"):
        load_recipe(tmp_path / "a.yaml")


def test_errors_in_an_extended_file_point_at_that_file(tmp_path):
    write_recipe(tmp_path / "base.yaml", "name: x\ndata: {name: moons}\nmodel: {arch: mlp, hidden: [-3]}\n")
    child = write_recipe(tmp_path / "child.yaml", "extends: base.yaml\nseed: 1\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(child)
    assert "model.hidden.0" in str(err.value) and "base.yaml:3" in str(err.value)


def test_overrides_set_nested_keys_and_turn_names_into_mappings(tmp_path):
    path = write_recipe(tmp_path / "r.yaml", tiny_recipe(optimizer="sgd"))
    recipe = load_recipe(path, ["optimizer.lr=0.5", "model.hidden=[3, 4]", "model.activation=gelu", "seed=3"])
    assert recipe.optimizer.name == "sgd" and recipe.optimizer.lr == 0.5
    assert recipe.model.hidden == [3, 4]
    assert recipe.model.activation.name == "gelu"
    assert recipe.seed == 3


def test_aliases_resolve_to_canonical_names(tmp_path):
    path = write_recipe(tmp_path / "r.yaml", tiny_recipe(model={"arch": "mlp", "activation": "swish",
                                                                "init": "glorot_uniform"}))
    recipe = load_recipe(path)
    assert recipe.model.activation.name == "silu" and recipe.model.init.name == "xavier_uniform"


def test_defaults_are_filled_in_and_the_resolved_recipe_reloads_identically(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe()))
    assert recipe.optimizer.betas == (0.9, 0.999)
    assert recipe.data.val_fraction == 0.15 and recipe.train.grad_accumulation == 1
    again = load_recipe(write_recipe(tmp_path / "resolved.yaml", recipe.to_yaml()))
    assert again == recipe


def test_early_stopping_mode_follows_the_metric(tmp_path):
    doc = tiny_recipe(train={"epochs": 2, "early_stopping": {"monitor": "val_accuracy"}})
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", doc))
    assert recipe.train.early_stopping.mode == "max"
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe(train={"early_stopping": True})))
    assert recipe.train.early_stopping.monitor == "val_loss" and recipe.train.early_stopping.mode == "min"


def test_name_defaults_to_the_file_stem(tmp_path):
    doc = tiny_recipe()
    del doc["name"]
    assert load_recipe(write_recipe(tmp_path / "my-exp.yaml", doc)).name == "my-exp"


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates_and_builds(path: Path):
    from dltrain.builder.objects import build
    recipe = load_recipe(path)
    if recipe.data.name in ("mnist", "fashion_mnist", "cifar10"):
        return  # needs downloaded files; its schema was still checked above
    if recipe.model.from_ is not None:
        return  # needs the run it transfers from (tests/test_recipes_models.py trains that pair)
    built = build(recipe)
    assert sum(p.numel() for p in built.model.parameters()) > 0
