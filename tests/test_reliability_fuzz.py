"""Property: whatever YAML document and overrides reach the recipe loader, the outcome is a valid
Recipe or a RecipeError (which the CLI turns into exit code 2): never another exception."""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import tiny_recipe, write_recipe
from dltrain.core.errors import RecipeError
from dltrain.recipe.schema import Recipe
from dltrain.recipe.load import load_recipe

FUZZ = settings(max_examples=int(os.environ.get("DLTRAIN_FUZZ_EXAMPLES", "120")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = (st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True)
           | st.text(max_size=12) | st.sampled_from(["relu", "adam", "mlp", "moons", "full", "cosine", "val_loss",
                                                    "name", "arch", "1e-3", "-1", "0", ".nan", "~"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8) | st.sampled_from(["name", "arch", "lr"]), inner, max_size=4),
                      max_leaves=12)
KEYS = ["name", "seed", "device", "data", "data.name", "data.n_samples", "data.batch_size", "data.val_fraction",
        "data.classes", "data.limit", "model", "model.arch", "model.hidden", "model.activation", "model.init",
        "model.dropout", "model.norm", "loss", "loss.name", "optimizer", "optimizer.name", "optimizer.lr",
        "optimizer.betas", "schedule", "schedule.name", "schedule.warmup_epochs", "clip", "clip.norm",
        "regularization.l2", "train", "train.epochs", "train.early_stopping", "train.early_stopping.monitor",
        "train.checkpoint_every_steps", "log.every_steps", "extends", "sweep", "model.hidden.0"]
key_paths = st.sampled_from(KEYS) | st.text(max_size=15)


def outcome(text: str, overrides: list[str]):
    """load_recipe on `text`; returns the Recipe or the RecipeError. Any other exception fails the test."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass") if _encodable(text) else path.write_bytes(
            text.encode("utf-8", "replace"))
        try:
            recipe = load_recipe(path, overrides)
        except RecipeError as err:
            assert err.problems and all(isinstance(p.message, str) and p.message for p in err.problems)
            err.render()
            return err
    assert isinstance(recipe, Recipe)
    assert yaml.safe_load(recipe.to_yaml()) is not None  # the resolved recipe can be saved
    return recipe


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _set(doc: dict, dotted: str, value) -> None:
    node = doc
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


@FUZZ
@given(st.text(max_size=200))
def test_random_text_is_a_recipe_or_a_recipe_error(text):
    outcome(text, [])


YAML_TOKENS = ["a", "b", ":", " ", "  ", "\n", "- ", "&x ", "*x", "&y ", "*y", "<<: ", "? ", "[", "]", "{", "}", ",",
               "!!python/object/apply:os.system ", "!!binary ", "!!set ", "!!str ", "1e-3", "'", '"', "#", "|", "---",
               "\x00", "\t", "name", "data", "model"]


@FUZZ
@given(st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map("".join))
def test_random_yaml_token_soup_is_a_recipe_or_a_recipe_error(text):
    outcome(text, [])


@FUZZ
@given(values)
def test_random_yaml_documents_are_a_recipe_or_a_recipe_error(doc):
    outcome(yaml.safe_dump(doc), [])


@FUZZ
@given(st.lists(st.tuples(key_paths, values), min_size=1, max_size=4))
def test_mutated_valid_recipes_are_a_recipe_or_a_recipe_error(changes):
    doc = copy.deepcopy(tiny_recipe())
    for dotted, value in changes:
        if dotted and all(dotted.split(".")):
            _set(doc, dotted, value)
    outcome(yaml.safe_dump(doc), [])


override_values = st.text(max_size=20) | values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())


@FUZZ
@given(st.lists(st.one_of(st.text(max_size=30),
                          st.builds(lambda k, v: f"{k}={v}", key_paths, override_values)), min_size=1, max_size=4))
def test_random_overrides_give_a_recipe_or_a_recipe_error(overrides):
    outcome(yaml.safe_dump(tiny_recipe()), overrides)


def test_a_fuzzed_bad_document_exits_2_through_the_cli_without_a_traceback(cli, tmp_path):
    recipe = write_recipe(tmp_path / "bad.yaml", "a: &x [*x]\ndata: {name: moons}\n")
    result = cli("validate", recipe)
    assert result.code == 2
    assert "cycle" in result.err and "Traceback" not in result.err + result.out
