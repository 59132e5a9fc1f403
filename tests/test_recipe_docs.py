"""docs/recipes.md documents every key of `data`, `train`, `train.early_stopping` and `log` with the
default `dltrain schema` gives it: a key added, removed or given a new default fails here until the
tables say so."""

from __future__ import annotations

import re

import pytest

from conftest import REPO

# section heading in docs/recipes.md -> the schema definition holding its keys
SECTIONS = {"data": "DatasetMoons", "train": "TrainSpec", "train.early_stopping": "EarlyStoppingSpec",
            "log": "LogSpec"}


def _tables() -> dict[str, dict[str, str]]:
    """heading -> {key: default cell}, from the `### \\`section\\`` tables."""
    text = (REPO / "docs/recipes.md").read_text(encoding="utf-8")
    tables: dict[str, dict[str, str]] = {}
    section = None
    for line in text.splitlines():
        heading = re.match(r"^### `([\w.]+)`", line)
        if heading:
            section = heading.group(1)
            tables[section] = {}
            continue
        row = re.match(r"^\| `(\w+)` \| (`[^`]*`|required) \|", line)
        if section and row:
            tables[section][row.group(1)] = row.group(2).strip("`")
        elif line.startswith("#"):
            section = None
    return tables


def _shown(value) -> str:
    """A default as YAML writes it."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value) if not isinstance(value, list) else "[" + ", ".join(map(str, value)) + "]"


def _schema_keys(definition: str) -> dict[str, str]:
    """key -> its default (or `required`), as the schema gives them; for `data`, the keys every
    dataset shares (data.registry.DataSpec's) and its tag."""
    from dltrain.data.registry import DataSpec
    from dltrain.recipe.json_schema import recipe_schema
    schema = recipe_schema()["$defs"][definition]
    keys = list(schema["properties"])
    if definition == "DatasetMoons":
        keys = ["name", *(f.alias or n for n, f in DataSpec.model_fields.items())]
    required = set(schema.get("required", []))
    return {key: "required" if key in required else _shown(schema["properties"][key]["default"]) for key in keys}


@pytest.mark.parametrize("section", SECTIONS)
def test_the_docs_table_lists_every_key_with_the_schemas_default(section):
    documented = _tables().get(section)
    assert documented is not None, f"docs/recipes.md has no `### \\`{section}\\`` table"
    expected = _schema_keys(SECTIONS[section])
    missing = {key: default for key, default in expected.items() if key not in documented}
    assert not missing, f"undocumented in the {section} table (key: default): {missing}"
    assert not set(documented) - set(expected), f"documented but not in the schema: {set(documented) - set(expected)}"
    wrong = {key: (documented[key], default) for key, default in expected.items() if documented[key] != default}
    assert not wrong, f"docs default vs the schema's: {wrong}"
