"""Overrides, sweep parameters and `extends`, as a user types them: they merge into the default
component where the recipe leaves a section out; a change of a component's name drops the old
component's parameters; `key: null` deletes an inherited key; errors are blamed on where the
problem came from (the command line, the keys a cross-field check names)."""

import re

import yaml

from conftest import run_dirs, write_recipe

# README's smallest recipe: no optimizer, schedule or loss section, activation and init left to defaults
BARE = "data: {name: digits}\nmodel: {arch: mlp, hidden: [32]}\n"


def resolved(cli, recipe, *overrides) -> dict:
    """The recipe `dltrain validate` prints, with every default filled in."""
    result = cli("validate", recipe, *overrides)
    assert result.code == 0, result.err
    return yaml.safe_load(re.split(r"\nmodel: \S+  \(input", result.out, maxsplit=1)[0])  # the summary follows


def test_overrides_into_sections_left_to_defaults_merge_into_the_default_component(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", BARE)
    doc = resolved(cli, recipe, "optimizer.lr=0.01", "schedule.warmup_epochs=2", "loss.label_smoothing=0.1",
                   "model.init=he_normal", "model.init.mode=fan_out")
    assert doc["optimizer"]["name"] == "adam" and doc["optimizer"]["lr"] == 0.01  # the schema's default optimizer
    assert doc["optimizer"]["betas"] == [0.9, 0.999]  # ... with its other defaults
    assert doc["schedule"] == {"name": "constant", "warmup_epochs": 2.0}
    # loss defaults to "chosen from the task": the one loss that takes label_smoothing
    assert doc["loss"]["name"] == "cross_entropy" and doc["loss"]["label_smoothing"] == 0.1
    assert doc["model"]["init"] == {"name": "he_normal", "mode": "fan_out", "negative_slope": 0.0}


def test_a_bare_name_given_parameters_by_an_override_becomes_a_mapping(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", BARE.replace("hidden: [32]", "hidden: [32], activation: leaky_relu"))
    doc = resolved(cli, recipe, "model.activation.negative_slope=0.2")
    assert doc["model"]["activation"] == {"name": "leaky_relu", "negative_slope": 0.2}


def test_a_parameter_the_default_component_does_not_take_is_refused_naming_it(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", BARE)
    result = cli("validate", recipe, "model.activation.negative_slope=0.2")
    assert result.code == 2
    assert ("model.activation.negative_slope (command line: model.activation.negative_slope=0.2): "
            "unknown key `negative_slope`: `relu` takes no parameters") in result.err


def test_only_a_change_of_name_replaces_a_components_parameters(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", BARE + "optimizer: {name: adam, lr: 0.05, betas: [0.8, 0.9]}\n")
    same = resolved(cli, recipe, "optimizer=adam")
    assert same["optimizer"]["lr"] == 0.05 and same["optimizer"]["betas"] == [0.8, 0.9]
    other = resolved(cli, recipe, "optimizer.name=sgd")  # adam's betas would not fit sgd: dropped
    assert other["optimizer"] == {"name": "sgd", "lr": 0.01, "weight_decay": 0.0}  # sgd's own defaults


def test_a_sweep_over_a_section_left_to_defaults_runs(cli, tmp_path):
    recipe = write_recipe(tmp_path / "s.yaml", "data: {name: moons, n_samples: 200}\nmodel: {arch: mlp, hidden: [8]}\n"
                          "device: cpu\ntrain: {epochs: 1}\nsweep:\n  method: grid\n  metric: val_loss\n"
                          "  params:\n    optimizer.lr: [0.01, 0.1]\n")
    result = cli("sweep", recipe)
    assert result.code == 0, result.err
    assert "2 trials: 2 completed" in result.out
    lrs = sorted(yaml.safe_load((run / "recipe.yaml").read_text())["optimizer"]["lr"]
                 for run in run_dirs(tmp_path / "runs") if (run / "recipe.yaml").is_file())
    assert lrs == [0.01, 0.1]


def test_extends_can_switch_architecture_and_optimizer(cli, tmp_path):
    write_recipe(tmp_path / "base.yaml", "name: base\ndata: {name: digits, as_images: true, batch_size: 32}\n"
                 "model: {arch: mlp, hidden: [64, 32], dropout: [0.1, 0.1], freeze: all_but_head, from: elsewhere}\n"
                 "optimizer: {name: adam, lr: 0.01, betas: [0.8, 0.9]}\n")
    child = write_recipe(tmp_path / "child.yaml", "extends: base.yaml\nmodel: {arch: cnn, channels: [8]}\n"
                         "optimizer: {name: sgd}\nseed: 1\n")
    result = cli("validate", child)
    assert result.code == 2  # `from: elsewhere` is not a run: proof that the key every arch shares survived
    assert "model.from" in result.err and "hidden" not in result.err
    doc = resolved(cli, child, "model.from=null")
    assert doc["model"]["arch"] == "cnn" and doc["model"]["channels"] == [8]
    assert doc["model"]["hidden"] == [128] and doc["model"]["dropout"] == 0.0  # mlp's values dropped: cnn's defaults
    assert doc["model"]["freeze"] == "all_but_head"  # a key every architecture shares stays
    assert doc["optimizer"]["name"] == "sgd" and doc["optimizer"]["lr"] == 0.01  # adam's lr and betas dropped
    assert "betas" not in doc["optimizer"] and doc["data"]["batch_size"] == 32


def test_null_deletes_an_inherited_key(cli, tmp_path):
    write_recipe(tmp_path / "base.yaml", "name: base\ndata: {name: moons, batch_size: 32}\n"
                 "model: {arch: mlp, hidden: [64, 32], dropout: [0.1, 0.1]}\n")
    child = write_recipe(tmp_path / "child.yaml", "extends: base.yaml\nmodel: {hidden: null, dropout: null}\n"
                         "data: {batch_size: ~}\n")
    doc = resolved(cli, child)
    assert doc["model"]["hidden"] == [256, 128] and doc["model"]["dropout"] == 0.0  # mlp's defaults
    assert doc["data"]["batch_size"] == 64
    # where null is itself a value (an LSTM's forget_bias: leave torch's), it stays that value
    lstm = write_recipe(tmp_path / "lstm.yaml", "data: {name: sine, n_samples: 100}\n"
                        "model: {arch: lstm, forget_bias: null}\n")
    assert resolved(cli, lstm)["model"]["forget_bias"] is None


def test_problems_from_the_command_line_say_so(cli, tmp_path):
    recipe = write_recipe(tmp_path / "good.yaml", BARE)
    result = cli("run", recipe, "optimzer.lr=0.1")
    assert result.code == 2
    assert "optimzer (command line: optimzer.lr=0.1): unknown key `optimzer`; did you mean `optimizer`?" in result.err
    assert "good.yaml:1" not in result.err
    assert not (tmp_path / "runs").exists()


def test_cross_field_problems_name_the_keys_involved(cli, tmp_path):
    resnet = write_recipe(tmp_path / "resnet.yaml", "data: {name: digits, as_images: true}\n"
                          "model: {arch: resnet, depth: 7}\n")
    assert "  - model.depth (" in cli("validate", resnet).err
    mlp = write_recipe(tmp_path / "mlp.yaml", "data: {name: iris}\nmodel: {arch: mlp, hidden: [8, 8], dropout: [0.1]}\n")
    err = cli("validate", mlp).err
    assert "  - model.dropout (" in err and "dropout has 1 rate but there are 2 hidden layers" in err
    result = cli("validate", mlp, "model.dropout=0.1", "data.val_fraction=0.5", "data.test_fraction=0.5")
    assert result.code == 2
    assert "  - data.val_fraction, data.test_fraction (" in result.err
    assert "data.iris" not in result.err and "model.mlp" not in result.err


def test_a_value_that_fits_no_member_of_a_union_gets_one_message(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", "data: {name: iris, batch_size: 0}\n"
                          "model: {arch: mlp, hidden: [8], dropout: 1.5}\n")
    result = cli("validate", recipe)
    assert result.code == 2
    problems = [line for line in result.err.splitlines() if line.startswith("  - ")]
    assert len(problems) == 2, result.err
    assert "data.batch_size (" in problems[0] and "Input should be greater than 0 or 'full'; got 0" in problems[0]
    assert "model.dropout (" in problems[1] and "Input should be less than 1; got 1.5" in problems[1]
