"""Registries: the facts every entry carries, and the catalog that walks them."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from conftest import run_dirs, run_subprocess, tiny_recipe, write_recipe
from dltrain.views.catalog import registries

# ------------------------------------------------------------------ entry facts


def test_every_entry_carries_exactly_the_facts_its_registry_declares():
    declared = {kind: reg.facts for kind, reg in registries().items()}
    assert declared["loss"] and declared["activation"] and declared["architecture"]  # the walk sees them
    for kind, registry in registries().items():
        for entry in registry.entries():
            assert set(entry.facts) == set(registry.facts), f"{kind} `{entry.name}`"
            for fact, value in entry.facts.items():
                TypeAdapter(registry.facts[fact]).validate_python(value, strict=True)


def test_registering_an_entry_without_a_declared_fact_fails_at_once():
    from dltrain.components import ACTIVATIONS, LOSSES
    with pytest.raises(TypeError, match=r"activation `hardswish`: missing facts \['probe'\]"):
        ACTIVATIONS.register("hardswish", description="x * relu6(x + 3) / 6")
    with pytest.raises(TypeError, match="fact `task` = 'ranking'"):
        LOSSES.register("margin", task="ranking", description="margin ranking")
    assert "hardswish" not in ACTIVATIONS and "margin" not in LOSSES


def test_every_registered_activation_is_probed_as_its_entry_says():
    """A new activation cannot silently get no diagnostics: the probe is looked up from its entry."""
    from dltrain.components import ACTIVATIONS
    from dltrain.diagnostics.probes import activation_probe
    for entry in ACTIVATIONS.entries():
        module = ACTIVATIONS.build(entry.model())
        assert activation_probe(module) == entry.facts["probe"], entry.name
    assert ACTIVATIONS.entry("tanh").facts["probe"].bounds == (-1.0, 1.0)


def test_a_loss_fits_the_task_its_entry_names(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(loss="huber"))  # moons: classification
    result = cli("validate", recipe)
    assert result.code == 2
    assert "`huber` is a regression loss, but `moons` is a classification task; expected one of: bce, " \
           "cross_entropy" in result.err


# ------------------------------------------------------------------ the catalog


@pytest.mark.parametrize("kind", [name for reg in registries().values() for name in (reg.kind, reg.plural)])
def test_catalog_takes_every_kind_singular_and_plural_and_titles_it_in_the_plural(cli, kind):
    registry = next(r for r in registries().values() if kind in (r.kind, r.plural))
    result = cli("catalog", kind)
    assert result.code == 0, result.err
    assert result.out.splitlines()[0].strip() == registry.plural  # `catalog loss` -> "losses", not "losss"
    assert all(name in result.out for name in registry.names())


def test_catalog_piped_prints_every_description_whole_on_one_line(tmp_path):
    proc = run_subprocess("catalog", cwd=tmp_path)  # stdout is a pipe, not a terminal
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    for registry in registries().values():
        for entry in registry.entries():
            rows = [line for line in proc.stdout.splitlines() if line.startswith(f"│ {entry.name} ")]
            assert any(entry.description in row and entry.describe_params() in row for row in rows), entry.name
    assert "U(+-gain*sqrt(6/(fan_in+fan_out))): keeps variance for tanh/sigmoid (Glorot 2010)" in proc.stdout


# ------------------------------------------------------------------ every problem at once, across phases


def test_validate_reports_every_problem_that_needs_the_data_at_once(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(
        loss="mse", model={"arch": "lstm"}, data={"name": "moons", "n_samples": 100, "augment": ["hflip"]},
        train={"epochs": 1, "precision": "fp16"}, device="cpu"))
    result = cli("validate", recipe)
    assert result.code == 2 and "Traceback" not in result.err
    assert "4 problems in the recipe" in result.err
    for key, message in [("loss", "`mse` is a regression loss"), ("model.arch", "`lstm` takes sequence"),
                         ("data.augment.0", "`hflip` transforms images"), ("train.precision", "fp16 mixed precision")]:
        assert f"{key}: {message}" in result.err
    assert list(tmp_path.iterdir()) == [recipe]


def test_a_schema_problem_and_a_data_problem_are_reported_together(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(optimizer={"name": "adam", "lrr": 0.01}, loss="mse"))
    for verb in ("validate", "run"):
        result = cli(verb, recipe)
        assert result.code == 2, verb
        assert "2 problems in the recipe" in result.err
        assert "optimizer.lrr (" in result.err and "r.yaml:" in result.err and "did you mean `lr`" in result.err
        assert "loss: `mse` is a regression loss, but `moons` is a classification task" in result.err
    assert run_dirs(tmp_path / "runs") == []


def test_a_problem_in_the_data_section_is_reported_alone_as_the_data_cannot_be_read(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data={"name": "moons", "n_sample": 100}, loss="mse"))
    result = cli("validate", recipe)
    assert result.code == 2
    assert "1 problem in the recipe" in result.err and "data.n_sample" in result.err
