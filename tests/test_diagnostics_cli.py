"""Diagnostics through the real CLI: what a run records, `dltrain diagnose`, divergence forensics and
`dltrain landscape`."""

import csv
import json
import re

import pytest
import torch

from conftest import REPO, run_dirs, tiny_recipe, write_recipe

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def train(cli, tmp_path, name="tiny", **sections):
    recipe = write_recipe(tmp_path / f"{name}.yaml", tiny_recipe(name=name, **sections))
    result = cli("run", recipe)
    (run,) = [d for d in run_dirs(tmp_path / "runs") if d.name.startswith(name + "-")]
    return result, run


UNLIMITED = {"diagnostics_budget": 1e9}  # every reading the schedule asks for, whatever it costs


def records(run):
    return [json.loads(line) for line in (run / "diagnostics.jsonl").read_text().splitlines()]


def test_a_run_records_probes_step_statistics_and_tensorboard_summaries(cli, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, run = train(cli, tmp_path, train={"epochs": 4}, log={"diagnostics_every": 2, **UNLIMITED},
                        model={"arch": "mlp", "hidden": [16, 16], "activation": "tanh"})
    assert result.code == 0, result.err
    rows = records(run)
    probes = [(r["phase"], r["epoch"]) for r in rows if r["kind"] == "probe"]
    assert probes == [("init", 0), ("epoch", 1), ("epoch", 2), ("epoch", 4)]  # the end is epoch 4: no repeat
    steps = [r for r in rows if r["kind"] == "step"]
    assert [r["step"] for r in steps] == list(range(2, 21, 2))  # 5 steps per epoch, every 2nd
    for r in steps:
        assert [layer["index"] for layer in r["layers"]] == [1, 2, 3]
        assert all(layer["grad_norm"] > 0 and layer["update_ratio"] > 0 for layer in r["layers"])
        assert [(a["index"], a["type"]) for a in r["activations"]] == [(1, "Tanh"), (2, "Tanh")]
        assert all(0 <= a["saturated"] <= 1 and a["std"] > 0 for a in r["activations"])

    events = EventAccumulator(str(run / "train"), size_guidance={"histograms": 0, "images": 0}).Reload()
    tags = events.Tags()
    assert {"diagnostics/grad_norm_first_over_last", "diagnostics/max_saturated_fraction",
            "diagnostics/max_update_ratio"} <= set(tags["scalars"])
    assert len(events.Scalars("diagnostics/max_saturated_fraction")) == len(rows)
    assert {"weights/layers.0.linear.weight", "gradients/layers.0.linear.weight",
            "activations/layers.1.activation"} <= set(tags["histograms"])
    assert tags["images"] == []  # the depth picture is drawn on demand: dltrain diagnose RUN --plot


def test_update_ratio_of_plain_gradient_descent_is_lr_times_gradient_over_weight(cli, tmp_path):
    result, run = train(cli, tmp_path, optimizer={"name": "sgd", "lr": 0.1}, train={"epochs": 1},
                        log={"diagnostics_every": 1, "tensorboard": False, **UNLIMITED})
    assert result.code == 0, result.err
    steps = [r for r in records(run) if r["kind"] == "step"]
    assert len(steps) == 5
    for r in steps:
        for layer in r["layers"]:  # w' = w - lr g  =>  |w' - w| / |w| = lr |g| / |w|
            assert layer["update_ratio"] == pytest.approx(0.1 * layer["grad_norm"] / layer["weight_norm"], rel=1e-4)


def test_diagnostics_do_not_change_what_is_trained(cli, tmp_path):
    model = {"arch": "mlp", "hidden": [16, 16], "dropout": 0.2, "norm": "batch"}
    on_result, on = train(cli, tmp_path, name="on", model=model, log={"diagnostics_every": 1, "tensorboard": False})
    off_result, off = train(cli, tmp_path, name="off", model=model, log={"diagnostics": False, "tensorboard": False})
    assert on_result.code == off_result.code == 0

    def losses(run):
        with open(run / "metrics.csv") as handle:
            return [(row["train_loss"], row["val_loss"]) for row in csv.DictReader(handle)]

    assert losses(on) == losses(off)  # bit-identical: probes restore RNG and batch-norm statistics
    assert not (off / "diagnostics.jsonl").exists() and not (off / "diagnostics").exists()


def test_diagnose_gives_opposite_verdicts_on_deep_sigmoid_and_he_relu_recipes(cli, tmp_path):
    sigmoid = cli("diagnose", REPO / "recipes" / "diagnose_sigmoid20.yaml", "--plot", tmp_path / "sigmoid.png")
    relu = cli("diagnose", REPO / "recipes" / "diagnose_relu_he.yaml")
    assert sigmoid.code == relu.code == 0, sigmoid.err + relu.err
    assert "initialization check" in sigmoid.out and "21 layers" in sigmoid.out
    falls = re.search(r"vanishing gradients: the gradient norm falls (\d+)-fold from layer 21 to layer 1 "
                      r"at initialization \(layer 21: \S+, layer 1: \S+; about \S+x per layer\)", sigmoid.out)
    assert falls and int(falls.group(1)) >= 20, sigmoid.out  # measured: 102
    assert "saturated units:" in sigmoid.out and "healthy" not in sigmoid.out
    within = re.search(r"healthy: gradient norms stay within ([\d.]+)x of each other across 7 layers", relu.out)
    assert within and float(within.group(1)) < 20, relu.out  # measured: 2.0
    assert "vanishing" not in relu.out and "dead units" not in relu.out
    assert (tmp_path / "sigmoid.png").read_bytes().startswith(PNG_MAGIC)
    assert not (tmp_path / "runs").exists()  # a recipe check trains nothing and creates no run


def test_diagnose_overrides_change_the_recipe_checked(cli):
    result = cli("diagnose", REPO / "recipes" / "diagnose_sigmoid20.yaml", "model.init=xavier_normal")
    assert result.code == 0 and "e11-fold" in result.out


def test_diagnose_a_run_judges_its_start_and_its_end(cli, tmp_path):
    result, run = train(cli, tmp_path)
    diagnosis = cli("diagnose", run, "--plot", tmp_path / "depth.png")
    assert diagnosis.code == 0, diagnosis.err
    assert "at initialization" in diagnosis.out and "at the end of training (epoch 3" in diagnosis.out
    assert (tmp_path / "depth.png").read_bytes().startswith(PNG_MAGIC)


HUGE_LR = {"optimizer": {"name": "sgd", "lr": 1.0e12}, "model": {"arch": "mlp", "hidden": [16, 16]},
           "log": {"tensorboard": False}}


def test_a_huge_learning_rate_ends_diverged_with_the_layer_named(cli, tmp_path):
    result, run = train(cli, tmp_path, **HUGE_LR)
    assert result.code == 3
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "diverged"
    assert "the output of layers.1.linear (Linear, layer 2) was the first non-finite value" in info["stop_reason"]
    report = json.loads((run / "forensics.json").read_text())
    assert report["reproduced"] and report["first_nonfinite"]["layer"] == 2
    assert report["first_nonfinite"]["step"] == report["step"] == 3
    assert [row["step"] for row in report["grad_norm_history"]["replayed"]] == [1, 2]
    assert any("optimizer.lr=1e+11" in tip for tip in report["suggestions"])
    assert not (run / "checkpoints").exists()  # it diverged in the first epoch: nothing worth keeping

    diagnosis = cli("diagnose", run)
    assert "diverged at step 3" in diagnosis.out and "layers.1.linear" in diagnosis.out
    assert "exploding gradients: the total gradient norm grew" in diagnosis.out


def test_divergence_advice_names_only_changes_the_recipe_has_not_made_and_why(cli, tmp_path):
    he = {**HUGE_LR, "model": {**HUGE_LR["model"], "activation": "relu", "init": "he_normal"}, "clip": {"value": 1.0e30}}
    result, run = train(cli, tmp_path, name="he", **he)
    assert result.code == 3
    tips = json.loads((run / "forensics.json").read_text())["suggestions"]
    assert not any("model.init" in tip for tip in tips)  # he_normal is what ReLU wants: already made
    assert any(tip.startswith("clip by norm instead") and "the run clipped each element to +-1e+30" in tip for tip in tips)

    assert "add `model.norm: batch` (the run had no normalization layers)" in tips

    plain = {**HUGE_LR, "model": {**HUGE_LR["model"], "activation": "relu", "init": {"name": "normal", "std": 1.0}}}
    result, run = train(cli, tmp_path, name="plain", **plain)
    assert result.code == 3
    tips = json.loads((run / "forensics.json").read_text())["suggestions"]
    assert any("`model.init: he_normal`" in tip and "the run used `normal` with `relu`" in tip for tip in tips)
    assert "clip gradients: `clip: {norm: 1.0}` (the run did not clip)" in tips
    assert not any("xavier" in tip for tip in tips)  # advice for another activation family


def test_the_replay_follows_gradient_accumulation_micro_batch_by_micro_batch(cli, tmp_path):
    result, run = train(cli, tmp_path, **{**HUGE_LR, "train": {"epochs": 3, "grad_accumulation": 2}})
    assert result.code == 3
    report = json.loads((run / "forensics.json").read_text())
    assert report["first_nonfinite"]["module"] == "layers.1.linear"
    assert [row["step"] for row in report["grad_norm_history"]["replayed"]] == [1, 1, 2, 2]


def test_a_run_diverging_after_good_epochs_keeps_only_finite_checkpoints(cli, tmp_path):
    # a linear regression whose warm-up carries the learning rate past the stability limit in epoch 3
    # raw targets (normalize_target: false): the stability limit is that of the data as it comes
    result, run = train(cli, tmp_path, data={"name": "friedman", "n_samples": 200, "batch_size": 16,
                                             "normalize_target": False},
                        model={"arch": "mlp", "hidden": [16], "activation": "identity"},
                        optimizer={"name": "sgd", "lr": 0.12}, schedule={"name": "constant", "warmup_epochs": 4},
                        train={"epochs": 8, "checkpoint_interval": 0}, log={"tensorboard": False})
    assert result.code == 3
    assert json.loads((run / "forensics.json").read_text())["epoch"] == 3
    for name in ("last.pt", "best.pt"):
        state = torch.load(run / "checkpoints" / name, weights_only=True)
        assert state["epoch"] <= 2
        assert all(torch.isfinite(t).all() for t in state["learner"]["model"].values())


def test_landscape_writes_numbers_and_a_plot_into_the_run(cli, tmp_path):
    _, run = train(cli, tmp_path, log={"tensorboard": False})
    result = cli("landscape", run, "--points", "5", "--span", "0.5", "--samples", "64")
    assert result.code == 0, result.err
    assert "loss at the weights" in result.out
    data = json.loads((run / "landscape.json").read_text())
    assert data["alphas"] == [-0.5, -0.25, 0.0, 0.25, 0.5] and data["samples"] == 64
    assert len(data["loss_2d"]) == 5 and data["loss_1d"][2] == pytest.approx(data["center_loss"])
    assert (run / "landscape.png").read_bytes().startswith(PNG_MAGIC)
    again = cli("landscape", run, "--points", "5", "--span", "0.5", "--samples", "64")
    assert again.code == 0 and json.loads((run / "landscape.json").read_text()) == data  # seeded


def test_bad_input_is_refused_with_exit_code_2(cli, tmp_path):
    missing = cli("diagnose", tmp_path / "nowhere")
    assert missing.code == 2 and "no such run directory or recipe file" in missing.err

    bare = tmp_path / "bare-run"
    bare.mkdir()
    (bare / "run.json").write_text("{}")
    no_records = cli("diagnose", bare)
    assert no_records.code == 2 and "has no diagnostics.jsonl" in no_records.err
    assert "Traceback" not in no_records.err
    overrides = cli("diagnose", bare, "seed=1")
    assert overrides.code == 2 and "overrides apply to a recipe" in overrides.err
    no_checkpoint = cli("landscape", bare)
    assert no_checkpoint.code == 2 and "checkpoints/last.pt does not exist" in no_checkpoint.err
    points = cli("landscape", bare, "--points", "1")
    assert points.code == 2

    recipe = write_recipe(tmp_path / "bad.yaml", tiny_recipe(log={"diagnostics_every": 0, "diagnostic": True}))
    bad = cli("run", recipe)
    assert bad.code == 2
    assert "log.diagnostics_every" in bad.err and "did you mean `diagnostics`" in bad.err
    assert not (tmp_path / "runs").exists()


def deep_mlp(tmp_path, name, blocks, **model):
    doc = {"name": name, "seed": 0, "device": "cpu",
           "data": {"name": "digits", "normalize": "standardize", "batch_size": 64},
           "model": {"arch": "mlp", "hidden": [64] * blocks, "activation": "relu", **model}}
    return write_recipe(tmp_path / f"{name}.yaml", doc)


def test_a_residual_net_is_judged_by_the_gradient_reaching_its_stream_not_by_weight_gradient_ratios(cli, tmp_path):
    # 30 residual blocks with N(0, 0.05^2) weights train to ~0.97 on digits: the head's weight gradient is
    # 35x layer 1's only because the stream's norm grows 59 -> 4.3e3; the stream's gradient grows towards the input
    recipe = deep_mlp(tmp_path, "residual", 30, init={"name": "normal", "std": 0.05}, residual=True)
    result = cli("diagnose", recipe)
    assert result.code == 0, result.err
    assert "vanishing gradients" not in result.out and "exploding gradients" not in result.out
    plain = cli("diagnose", deep_mlp(tmp_path, "plain", 30, init={"name": "normal", "std": 0.05}))
    assert "vanishing" in plain.out  # the same weights without skips: the signal dies out


def test_dead_residual_branches_are_named_as_branches_the_stream_still_carries_the_gradient(cli, tmp_path):
    recipe = deep_mlp(tmp_path, "deadbranch", 8, init="he_normal", residual=True,
                      bias_init={"name": "constant", "value": -100.0})
    result = cli("diagnose", recipe)
    assert "dead branches: 100% of block 1's ReLUs never fire" in result.out
    assert "the skip connection still carries the signal past it; 7 more blocks above 25%" in result.out
    assert "gradients" not in result.out  # every branch is dead, yet the gradient reaches the input


def test_a_blow_up_equal_in_every_layer_is_exploding_gradients(cli, tmp_path):
    # N(0, 1) weights in 10 ReLU layers: every layer's gradient is huge, so no layer-to-layer ratio shows it
    recipe = deep_mlp(tmp_path, "normal", 9, init={"name": "normal", "std": 1.0})
    result = cli("diagnose", recipe)
    found = re.search(r"exploding gradients: the total gradient norm \((\S+)\) is (\S+) times the weights' norm", result.out)
    assert found and float(found[1]) > 1e7 and float(found[2]) > 1e5
    he = cli("diagnose", deep_mlp(tmp_path, "he", 9, init="he_normal"))
    assert "exploding" not in he.out


def test_train_eval_adds_eval_mode_training_metrics_and_changes_nothing_else(cli, tmp_path):
    model = {"arch": "mlp", "hidden": [32], "dropout": 0.5}
    _, plain = train(cli, tmp_path, name="plain", model=model, log={"tensorboard": False})
    result, run = train(cli, tmp_path, name="evaluated", model=model, log={"tensorboard": False, "train_eval": True})
    assert result.code == 0, result.err
    rows, before = (list(csv.DictReader((r / "metrics.csv").open())) for r in (run, plain))
    assert "train_eval_loss" not in before[0]  # off by default
    for row, old in zip(rows, before):  # training itself is bit-identical
        assert all(row[k] == old[k] for k in old if k != "seconds")
    # with dropout 0.5 the running mean in training mode is not the eval-mode loss on the same samples
    assert all(row["train_eval_loss"] != row["train_loss"] for row in rows)
    assert {"train_eval_loss", "train_eval_accuracy"} <= set(rows[0])
    compared = cli("compare", str(run), str(plain), "--metric", "train_eval_loss", "--runs-dir", str(tmp_path / "runs"))
    assert compared.code == 0, compared.err
    assert f"{float(rows[-1]['train_eval_loss']):.4f}" in compared.out
