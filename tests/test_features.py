"""Features are registered callbacks: made by walking the registry, in its order (whose rules are
checked data), saved under stable state names, turned on by recipe keys; the loop's events give
them what they need, so none reaches into a private attribute of the learner, optimizer or scaler."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_dirs, tiny_recipe, write_recipe
from torch import nn

from dltrain.features.registry import ALWAYS, FEATURES, GIVEN, Features
from dltrain.train.events import EVENTS, Callback, FitState, StepEnd

UNLIMITED = 1e9  # a diagnostics budget every reading fits in

EVERYTHING_ON = tiny_recipe(train={"epochs": 2, "early_stopping": {"monitor": "val_loss", "patience": 5}},
                            log={"tensorboard": True, "histograms": True, "diagnostics": True})


def built_callbacks(tmp_path, doc=EVERYTHING_ON, given=None):
    from dltrain.builder.features import build_callbacks
    from dltrain.builder.objects import build
    from dltrain.recipe.load import load_recipe
    from dltrain.rundir.writer import RunDir

    built = build(load_recipe(write_recipe(tmp_path / "r.yaml", doc)))
    return build_callbacks(built, RunDir(tmp_path / "run"), given=given)


def test_the_builder_makes_every_feature_the_recipe_turns_on_in_registry_order_under_its_state_name(tmp_path):
    class Shown(Callback):
        pass

    callbacks = built_callbacks(tmp_path, given={"progress": Shown()})
    names = [cb.state_name for cb in callbacks]
    assert names == ["hparams", "diagnostics", "nonfinite", "early_stopping", "metrics_file", "tensorboard",
                     "checkpoint", "progress"]
    assert isinstance(callbacks[-1], Shown)
    plain = built_callbacks(tmp_path, tiny_recipe(log={"tensorboard": False, "diagnostics": False}))
    assert [cb.state_name for cb in plain] == ["nonfinite", "metrics_file", "checkpoint"]


def test_a_given_callback_for_a_feature_that_is_not_given_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not features whose callback is given: progres"):
        built_callbacks(tmp_path, given={"progres": Callback()})


def test_an_order_that_breaks_a_rule_is_refused_at_registration_with_the_rule():
    features = Features()
    features.register(dataclasses.replace(FEATURES["diagnostics"]))
    guard = FEATURES["nonfinite"]
    with pytest.raises(ValueError, match="must come after `diagnostics`.*names the layer that diverged"):
        features.register(dataclasses.replace(guard, order=FEATURES["diagnostics"].order - 1))
    with pytest.raises(ValueError, match="not registered"):
        Features().register(guard)


def test_every_stateful_callback_fires_before_the_checkpoint_that_saves_its_state(tmp_path):
    class Pruning(Callback):
        def state_dict(self):
            return {"reports": 1}

    callbacks = built_callbacks(tmp_path, given={"sweep_pruning": Pruning()})
    at = {cb.state_name: i for i, cb in enumerate(callbacks)}
    stateful = [cb.state_name for cb in callbacks if type(cb).state_dict is not Callback.state_dict]
    assert {"early_stopping", "sweep_pruning", "checkpoint"} <= set(stateful)
    assert all(at[name] < at["checkpoint"] for name in stateful if name != "checkpoint")


def test_an_epochs_checkpoint_holds_early_stoppings_state_after_that_epoch(cli, tmp_path):
    from dltrain.train.events import Monitor

    # min_delta 1: no epoch after the first counts as an improvement, so the counter ends at 4
    doc = tiny_recipe(train={"epochs": 5, "early_stopping": {"monitor": "val_loss", "patience": 50,
                                                             "min_delta": 1.0}},
                      log={"tensorboard": False})
    assert cli("run", write_recipe(tmp_path / "r.yaml", doc), "--runs-dir", tmp_path / "runs").code == 0
    (run,) = run_dirs(tmp_path / "runs")
    monitor, bad = Monitor("val_loss", "min", 1.0), 0
    for row in _rows(run):
        bad = 0 if monitor.update(row["val_loss"], row["epoch"]) else bad + 1
    saved = torch.load(run / "checkpoints/last.pt", weights_only=True)["callbacks"]["early_stopping"]
    assert saved["bad_epochs"] == bad == 4  # the last epoch counted too: saved after early stopping updated
    assert saved["monitor"] == monitor.state_dict()


def _rows(run: Path) -> list[dict]:
    import csv
    with open(run / "metrics.csv", newline="") as handle:
        return [{"epoch": int(r["epoch"]), "val_loss": float(r["val_loss"])} for r in csv.DictReader(handle)]


def test_every_recipe_key_a_feature_names_is_a_key_of_the_recipe(tmp_path):
    from dltrain.builder.features import recipe_value
    from dltrain.recipe.load import load_recipe

    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", EVERYTHING_ON))
    for feature in FEATURES:
        keys = list(feature.settings.values()) + ([] if feature.on in (ALWAYS, GIVEN) else [feature.on])
        for key in keys:
            recipe_value(recipe, key)  # raises AttributeError for a key the schema does not have


def test_state_names_are_stable_and_the_old_class_names_are_still_read():
    old = {"NonFiniteGuard": "nonfinite", "EarlyStopping": "early_stopping", "MetricsFile": "metrics_file",
           "TensorBoard": "tensorboard", "Checkpointer": "checkpoint", "Diagnostics": "diagnostics",
           "OptunaReport": "sweep_pruning", "PlainProgress": "progress", "LiveProgress": "progress"}
    for class_name, name in old.items():
        assert FEATURES.saved_state({class_name: {"was": class_name}}, name) == {"was": class_name}
    assert FEATURES.saved_state({"early_stopping": {"new": 1}, "EarlyStopping": {"old": 1}},
                                "early_stopping") == {"new": 1}


def test_a_misspelt_event_is_refused_when_the_callback_is_defined():
    with pytest.raises(TypeError, match="on_step_ends is not a callback event"):
        class Typo(Callback):
            def on_step_ends(self, state, step):
                pass
    assert {"on_step_end", "on_eval_start", "on_eval_end", "on_run_end"} <= set(EVENTS)


def _learner(model, optimizer, **kwargs):
    from dltrain.components.schedules import LRSchedule, constant
    from dltrain.train.loop import Learner
    return Learner(model, nn.CrossEntropyLoss(), optimizer,
                   LRSchedule(optimizer, constant(1), warmup_epochs=0, steps_per_epoch=1),
                   task="classification", **kwargs)


def _loaders(device="cpu"):
    from dltrain.data.loader import ArrayLoader
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 4, generator=g).to(device), torch.randint(0, 2, (96,), generator=g).to(device)
    return ArrayLoader(x, y, 16, shuffle=False), ArrayLoader(x[:32], y[:32], 32, shuffle=False)


def test_step_and_evaluation_events_fire_once_per_step_and_around_each_validation():
    from dltrain.train.loop import fit

    class Listener(Callback):
        def __init__(self):
            self.events = []

        def on_step_end(self, state, step):
            self.events.append(("step", state.step, step.grad_norm is not None, step.skipped))

        def on_eval_start(self, state, split):
            self.events.append(("eval_start", split, state.learner.model.training))

        def on_eval_end(self, state, split, metrics):
            self.events.append(("eval_end", split, sorted(metrics)))

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    learner = _learner(model, torch.optim.SGD(model.parameters(), lr=0.1), log_every=3)
    listener = Listener()
    train, val = _loaders()
    fit(learner, train, val, FitState(learner=learner, epochs=2, callbacks=[listener]))
    steps = [e for e in listener.events if e[0] == "step"]
    assert [e[1] for e in steps] == list(range(1, 13))  # 6 batches an epoch, 2 epochs
    assert [e[2] for e in steps] == [n % 3 == 0 for n in range(1, 13)]  # the norm is measured at log points
    assert not any(e[3] for e in steps)  # fp32: nothing skips
    evals = [e for e in listener.events if e[0] != "step"]
    assert evals == [("eval_start", "val", True), ("eval_end", "val", ["accuracy", "loss"])] * 2
    assert listener.events.index(evals[0]) == 6  # after the epoch's last step


def test_diagnostics_gets_update_norms_from_a_plain_optimizer_that_nobody_hooks(tmp_path, monkeypatch):
    from dltrain.features.diagnostics import Diagnostics
    from dltrain.rundir.layout import DIAGNOSTICS as RECORDS_FILE
    from dltrain.rundir.writer import RunDir, read_jsonl
    from dltrain.train.loop import fit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    learner = _learner(model, optimizer, log_every=2)

    def refused(*args, **kwargs):
        raise AssertionError("a feature hooked the optimizer")

    monkeypatch.setattr(torch.optim.Optimizer, "register_step_pre_hook", refused)
    monkeypatch.setattr(torch.optim.Optimizer, "register_step_post_hook", refused)
    train, val = _loaders()
    x, y = next(iter(train))
    fit(learner, train, val, FitState(learner=learner, epochs=1,
                                      callbacks=[Diagnostics(RunDir(tmp_path), (x, y), every=2, tensorboard=False,
                                                                  budget=UNLIMITED)]))
    assert "step" not in vars(optimizer)  # the optimizer's own step, not a patched one
    steps = [r for r in read_jsonl(tmp_path / RECORDS_FILE) if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [2, 4, 6]
    for record in steps:  # the update norm is recorded relative to the weights' norm before the step
        ratios = [layer["update_ratio"] for layer in record["layers"]]
        assert len(ratios) == 2 and all(isinstance(r, float) and r > 0 for r in ratios)


def test_an_update_norm_is_the_norm_of_the_steps_change_of_the_weights(tmp_path):
    """SGD without momentum moves a weight by lr * grad: the update norm (update_ratio times the norm
    of the weights before the step) is lr times the grad norm."""
    from dltrain.features.diagnostics import Diagnostics
    from dltrain.rundir.layout import DIAGNOSTICS as RECORDS_FILE
    from dltrain.rundir.writer import RunDir, read_jsonl
    from dltrain.train.loop import fit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2, bias=False))
    learner = _learner(model, torch.optim.SGD(model.parameters(), lr=0.1), log_every=1)
    train, _ = _loaders()
    x, y = next(iter(train))
    fit(learner, train, None, FitState(learner=learner, epochs=1,
                                       callbacks=[Diagnostics(RunDir(tmp_path), (x, y), every=3, tensorboard=False,
                                                                   budget=UNLIMITED)]))
    (first, *_) = [r for r in read_jsonl(tmp_path / RECORDS_FILE) if r["kind"] == "step"]
    last = first["layers"][-1]  # one weight matrix, no bias
    assert last["update_ratio"] * last["weight_norm"] == pytest.approx(0.1 * last["grad_norm"], rel=1e-4)


def test_fp16_skipped_steps_are_reported_by_the_step_event():
    """A GradScaler step whose gradients overflowed changes no weight, and on_step_end says it skipped."""
    if not torch.cuda.is_available():
        pytest.skip("fp16 loss scaling needs CUDA")
    from dltrain.train.loop import fit

    class Skips(Callback):
        def __init__(self):
            self.seen = []  # (skipped, weights after the step)

        def on_step_end(self, state, step: StepEnd):
            self.seen.append((step.skipped, [p.detach().clone() for p in state.learner.params]))

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).cuda()
    learner = _learner(model, torch.optim.SGD(model.parameters(), lr=0.1), precision="fp16")
    learner.scaler = torch.amp.GradScaler("cuda", init_scale=2.0 ** 24)  # overflows fp16 gradients at first
    train, _ = _loaders("cuda")
    skips = Skips()
    fit(learner, train, None, FitState(learner=learner, epochs=4, callbacks=[skips]))
    skipped = [s for s, _ in skips.seen]
    assert skipped[0] and not skipped[-1], skipped
    for (_, before), (now_skipped, after) in zip(skips.seen, skips.seen[1:]):
        assert all(torch.equal(a, b) for a, b in zip(before, after)) == now_skipped


PRIVATE_OK = {"self", "torch"}  # own attributes; torch's foreach functions (torch._foreach_norm, ...)


def test_no_feature_reaches_into_a_private_attribute_of_an_object_it_does_not_own():
    files = sorted((REPO / "dltrain" / "features").glob("*.py")) + [REPO / "dltrain/diagnostics/forensics.py"]
    reaches = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and ast.unparse(node.value) not in PRIVATE_OK):
                reaches.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert not reaches, "\n".join(reaches)


def test_the_run_lock_is_released_once_by_whoever_took_it(cli, tmp_path, monkeypatch):
    from dltrain.rundir.lock import RunLock

    real, releases = RunLock.release, []

    def release(self):
        releases.append(self.fd)
        real(self)

    monkeypatch.setattr(RunLock, "release", release)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(log={"tensorboard": False}))
    assert cli("run", recipe, "--runs-dir", tmp_path / "runs").code == 0
    assert len(releases) == 1
    (run,) = run_dirs(tmp_path / "runs")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    releases.clear()
    assert cli("resume", run).code == 0
    assert len(releases) == 1 and not (run / "run.lock").exists()


def test_the_runner_reads_of_the_recipe_only_its_name_seed_and_text():
    """Building is the builder's: runner/execute.py hands the recipe to it and writes what it is."""
    tree = ast.parse((REPO / "dltrain/runner/execute.py").read_text())
    read = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and ast.unparse(node.value).split(".")[-1] == "recipe"}
    assert read == {"name", "seed", "to_yaml"}
