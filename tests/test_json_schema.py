"""`dltrain schema`: a JSON Schema (draft 2020-12) of the recipe, generated from the validator's own
models and registries. Every shipped recipe validates against it; misspelt keys, unknown component
names and mistyped values do not; on each document below the schema and the validator agree."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from conftest import REPO, tiny_recipe
from dltrain.core.errors import RecipeError
from dltrain.core.yamlio import read_yaml_file


@pytest.fixture(scope="module")
def validator():
    from dltrain.cli import main
    import contextlib
    import io
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit) as done:
        main(["schema"])
    assert done.value.code in (0, None)
    schema = json.loads(printed.getvalue())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)  # a well-formed schema of that draft
    return jsonschema.Draft202012Validator(schema)


RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_shipped_recipe_validates(validator, path):
    doc, _ = read_yaml_file(path)
    assert [e.message for e in validator.iter_errors(doc)] == []


def _with(path: str, value):
    doc = copy.deepcopy(tiny_recipe())
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return doc


GOOD = {
    "tiny": tiny_recipe(),
    "name left to the file": {k: v for k, v in tiny_recipe().items() if k != "name"},
    "component by name": _with("optimizer", "sgd"),
    "component by alias": _with("model.activation", "swish"),
    "alias in a mapping": _with("model.init", {"name": "kaiming_normal", "mode": "fan_out"}),
    "early_stopping: true": _with("train.early_stopping", True),
    "early stopping settings": _with("train.early_stopping", {"patience": 3, "monitor": "val_accuracy"}),
    "augmentations": {**tiny_recipe(data={"name": "digits", "augment": ["noise"]}),
                      "model": {"arch": "cnn", "channels": [4]}},
    "mapping without its name: the default's": _with("optimizer", {"lr": 0.1}),
    "loss without its name": _with("loss", {"label_smoothing": 0.1}),
    "null: the default": _with("data.batch_size", None),
    "loss chosen": _with("loss", {"name": "cross_entropy", "label_smoothing": 0.1}),
}
BAD = {
    "misspelt section": {**tiny_recipe(), "optimzer": {"name": "adam"}},
    "misspelt component key": _with("optimizer", {"name": "adam", "lrr": 0.1}),
    "key of another entry": _with("optimizer", {"name": "adam", "momentum": 0.9}),
    "unknown component": _with("model.activation", "rleu"),
    "unknown architecture": _with("model", {"arch": "mpl", "hidden": [8]}),
    "another entry's key without a name": _with("optimizer", {"lr": 0.1, "momentum": 0.9}),  # adam's?
    "a loss key no loss has": _with("loss", {"label_smoothin": 0.1}),
    "text for a number": _with("train.epochs", "ten"),
    "zero epochs": _with("train.epochs", 0),
    "misspelt train key": _with("train.epoch", 3),
    "misspelt log key": _with("log.tensorbord", False),
    "misspelt data key": _with("data.batchsize", 8),
    "misspelt early stopping key": _with("train.early_stopping", {"patiense": 3}),
    "precision not offered": _with("train.precision", "fp64"),
    "no model": {k: v for k, v in tiny_recipe().items() if k != "model"},
}


@pytest.mark.parametrize("doc", GOOD.values(), ids=GOOD.keys())
def test_documents_the_validator_accepts_the_schema_accepts(validator, doc):
    from dltrain.recipe.load import validate_document
    validate_document({"name": "x", **doc})
    assert [e.message for e in validator.iter_errors(doc)] == []


@pytest.mark.parametrize("doc", BAD.values(), ids=BAD.keys())
def test_documents_the_validator_refuses_the_schema_refuses(validator, doc):
    from dltrain.recipe.load import validate_document
    with pytest.raises(RecipeError):
        validate_document({"name": "x", **doc})
    assert list(validator.iter_errors(doc))


def test_a_recipe_with_extends_may_be_partial_but_not_misspelt(validator):
    child = {"extends": "base.yaml", "model": {"hidden": [8]}, "train": {"epochs": 2}}
    assert list(validator.iter_errors(child)) == []
    assert list(validator.iter_errors({**child, "model": {"hiden": [8]}}))
    assert list(validator.iter_errors({**child, "extends": 3}))


def test_schema_out_writes_the_file(cli, tmp_path):
    result = cli("schema", "--out", tmp_path / "recipe.schema.json")
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "recipe.schema.json").read_text())["title"] == "dltrain recipe"
