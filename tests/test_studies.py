"""Studies: every shipped study validates, a bad study file is refused before anything runs, a
study runs through the real CLI to a report with verdicts, and the verdict rules on known numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import REPO
from dltrain.study.spec import ClaimSpec, load_study
from dltrain.study.verdict import CONFIRMED, INCONCLUSIVE, NOT_CONFIRMED, ArmResult, judge

SHIPPED = sorted((REPO / "studies").glob("*.yaml"))
LESSONS = 14  # issue 17: one study per lesson of the chapters


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_study_validates_with_its_claims_on_measured_quantities(path):
    study = load_study(path)
    names = {arm.name for arm in study.spec.arms}
    assert all(set(claim.arms) <= names for claim in study.spec.claims)
    assert study.spec.quick.seeds >= 2, "the quick form must still allow a t-test"
    for _, recipes in study.arm_recipes({p.name: "runs/placeholder" for p in study.spec.prepare}):
        assert [r.seed for r in recipes] == list(range(recipes[0].seed, recipes[0].seed + study.seeds))
    comments = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    assert re.search(r"\b(19|20)\d\d\b", comments), "the file's comments cite where the settings come from"


def test_list_shows_every_shipped_study_one_line_each(cli):
    result = cli("study", "--list")
    assert result.code == 0
    lines = result.out.strip().splitlines()
    assert len(lines) == len(SHIPPED) >= LESSONS
    assert {line.split()[0] for line in lines} == {p.stem for p in SHIPPED}


GOOD = """\
summary: a tiny study
base:
  device: cpu
  data: {name: moons, n_samples: 200, batch_size: 32}
  model: {arch: mlp, hidden: [8]}
  train: {epochs: 2}
arms:
  - name: relu
    set: {model.activation: relu}
  - name: tanh
    set: {model.activation: tanh}
metrics: [best_val_accuracy]
claims:
  - beats: {arm: relu, over: tanh, metric: best_val_accuracy}
"""


@pytest.mark.parametrize("change, key, line, hint", [
    (("seeds", "sedes: 3\nseeds"), "sedes", 12, "did you mean `seeds`?"),
    (("over: tanh", "over: tahn"), "claims.0.beats.over", 14, "did you mean `tanh`?"),
    (("metric: best_val_accuracy}", "metric: best_val_acuracy}"), "claims.0.beats.metric", 14,
     "did you mean `best_val_accuracy`?"),
    (("model.activation: tanh", "model.activaton: tanh"), "arms[tanh] model.activaton", 11,
     "did you mean `activation`?"),
    (("model.activation: tanh", "model.activation: tanhh"), "arms[tanh] model.activation", 11, "tanh"),
])
def test_a_bad_study_file_names_the_key_and_line_exits_2_and_writes_nothing(cli, tmp_path, change, key, line, hint):
    old, new = change
    text = GOOD.replace("metrics:", "seeds: 3\nmetrics:") if old == "seeds" else GOOD
    (tmp_path / "bad.yaml").write_text(text.replace(old, new, 1))
    result = cli("study", "bad.yaml", "--runs-dir", "r", "--reports-dir", "o")
    assert result.code == 2
    assert f"{key} (bad.yaml:{line})" in result.err, result.err
    assert hint in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "r").exists() and not (tmp_path / "o").exists()


def test_a_bad_override_on_the_command_line_is_refused_before_any_run(cli, tmp_path):
    (tmp_path / "good.yaml").write_text(GOOD)
    result = cli("study", "good.yaml", "train.epohcs=1", "--runs-dir", "r")
    assert result.code == 2 and "train.epohcs" in result.err and "command line" in result.err
    assert not (tmp_path / "r").exists()


def test_an_unknown_study_name_suggests_the_close_one(cli):
    result = cli("study", "init-dpeth")
    assert result.code == 2 and "did you mean `init-depth`?" in result.err


# ---------------------------------------------------------------------------------------------
# the real CLI, on shipped studies made tinier still by overrides (the suite must stay fast)


def run_study(cli, tmp_path, name, *overrides):
    result = cli("study", name, "--quick", *overrides, "--runs-dir", "r", "--reports-dir", "o")
    assert result.code == 0, result.out + result.err
    (folder,) = list((tmp_path / "o").iterdir())
    numbers = json.loads((folder / "numbers.json").read_text())
    return result, folder, numbers


def test_quick_vanishing_sigmoid_measures_the_gradient_ratio_and_reports_a_verdict(cli, tmp_path):
    result, folder, numbers = run_study(cli, tmp_path, "vanishing-sigmoid", "train.epochs=1", "data.limit=300")
    report = (folder / "report.md").read_text()
    assert "quick form, 2 seeds; quick settings for every arm: train.epochs=5" in report
    assert "command-line overrides: train.epochs=1 data.limit=300" in report
    assert "Welch's t-test" in report and "## Reproduce" in report
    assert (folder / "curves.png").stat().st_size > 10_000 and (folder / "depth.png").stat().st_size > 10_000
    ratios = numbers["arms"]["sigmoid"]["values"]["grad_ratio"] + numbers["arms"]["relu"]["values"]["grad_ratio"]
    assert len(ratios) == 4 and all(r > 0 for r in ratios)
    # the sigmoid stack's first layer gets a far smaller share of the gradient than ReLU/He's (Glorot & Bengio 2010)
    assert max(numbers["arms"]["sigmoid"]["values"]["grad_ratio"]) < min(numbers["arms"]["relu"]["values"]["grad_ratio"])
    for v in numbers["verdicts"]:
        assert v["verdict"] in (CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE)
        assert f"**{v['verdict']}**" in report
    # the runs are an ordinary batch: compare reads it, grouped by arm
    compared = cli("compare", numbers["batch"], "--runs-dir", "r", "--format", "json")
    assert compared.code == 0
    assert sorted(row["n"] for row in json.loads(compared.out)["rows"]) == [2, 2]


def test_quick_l1_sparsity_counts_near_zero_weights_of_the_final_checkpoint(cli, tmp_path):
    _, _, numbers = run_study(cli, tmp_path, "l1-sparsity", "train.epochs=1")
    for arm in ("none", "l1", "l2"):
        values = numbers["arms"][arm]["values"]["sparsity"]
        assert len(values) == 2 and all(0 <= v <= 1 for v in values)


def test_quick_transfer_trains_the_prepared_source_first_and_the_arm_starts_from_it(cli, tmp_path):
    _, _, numbers = run_study(cli, tmp_path, "transfer-few", "train.epochs=1")
    runs = {p.name: json.loads((p / "run.json").read_text()) for p in (tmp_path / "r").iterdir()}
    sources = [n for n, info in runs.items() if info["study"]["arm"] == "source"]
    assert len(sources) == 1 and runs[sources[0]]["batch"] == numbers["batch"] + "-prepare"
    transferred = [info for n, info in runs.items() if info["study"]["arm"] == "transfer"]
    assert len(transferred) == 2
    assert all(Path(info["transfer"]["from"]).parent.parent.name == sources[0] for info in transferred)
    assert numbers["arms"]["scratch"]["statuses"] == ["completed", "completed"]


def test_quick_batch_sharpness_measures_the_loss_rise_around_the_weights(cli, tmp_path):
    _, _, numbers = run_study(cli, tmp_path, "batch-sharpness", "train.epochs=1")
    for arm in ("small-32", "large-512"):
        assert all(v is not None and v > -1 for v in numbers["arms"][arm]["values"]["sharpness"])


# ---------------------------------------------------------------------------------------------
# verdicts on synthetic numbers


def arm(name, values, statuses=None, quantity="best_val_accuracy"):
    return ArmResult(name, statuses or ["completed"] * len(values), {quantity: values})


def claim(**body):
    return ClaimSpec.model_validate(body)


BEATS = {"beats": {"arm": "a", "over": "b", "metric": "best_val_accuracy"}}


@pytest.mark.parametrize("a, b, verdict, words", [
    ([0.90, 0.91, 0.92], [0.50, 0.52, 0.51], CONFIRMED, "p = "),
    ([0.50, 0.52, 0.51], [0.90, 0.91, 0.92], NOT_CONFIRMED, "`b` is ahead"),
    ([0.70, 0.90, 0.50], [0.60, 0.80, 0.70], INCONCLUSIVE, "within the seed spread"),
    ([0.9], [0.5, 0.6], INCONCLUSIVE, "too few finished seeds"),
])
def test_beats_is_judged_by_welchs_test_in_the_claimed_direction(a, b, verdict, words):
    result = judge(claim(**BEATS), {"a": arm("a", a), "b": arm("b", b)})
    assert result.verdict == verdict and words in result.reason


def test_beats_on_a_loss_means_lower_is_better():
    body = {"beats": {"arm": "a", "over": "b", "metric": "test_loss"}}
    arms = {"a": arm("a", [0.1, 0.12, 0.11], quantity="test_loss"), "b": arm("b", [0.5, 0.52, 0.51], quantity="test_loss")}
    assert judge(claim(**body), arms).verdict == CONFIRMED


def test_an_arm_that_diverged_on_every_seed_loses():
    arms = {"a": arm("a", [0.9, 0.9]), "b": arm("b", [None, None], ["diverged", "diverged"])}
    result = judge(claim(**BEATS), arms)
    assert result.verdict == CONFIRMED and "2 diverged" in result.reason


def test_an_arm_left_with_one_finished_seed_loses_to_one_whose_every_seed_finished():
    arms = {"a": arm("a", [0.2, 0.3, 0.25]), "b": arm("b", [0.9, None, None], ["completed", "diverged", "failed"])}
    result = judge(claim(**BEATS), arms)
    # b's one finished seed scores higher than a, but b lost two of three seeds: finishing counts first
    assert result.verdict == CONFIRMED and "every run of `a` finished" in result.reason


@pytest.mark.parametrize("values, verdict", [
    ([0.9, 1.1, 1.0], CONFIRMED),
    ([3.0, 4.0, 5.0], NOT_CONFIRMED),
    ([1.0, 1.2, 2.5], INCONCLUSIVE),  # mean 1.57 inside [0.5, 2], one seed outside
])
def test_within_needs_every_seed_inside_the_range(values, verdict):
    body = {"within": {"arm": "a", "metric": "act_std_ratio", "range": [0.5, 2.0]}}
    assert judge(claim(**body), {"a": arm("a", values, quantity="act_std_ratio")}).verdict == verdict


@pytest.mark.parametrize("statuses, expected, verdict", [
    (["diverged"] * 3, True, CONFIRMED),
    (["completed"] * 3, True, NOT_CONFIRMED),
    (["completed"] * 3, False, CONFIRMED),
    (["diverged", "completed", "completed"], False, INCONCLUSIVE),
])
def test_diverges_needs_every_seed_to_agree(statuses, expected, verdict):
    body = {"diverges": {"arm": "a", "expected": expected}}
    assert judge(claim(**body), {"a": ArmResult("a", statuses)}).verdict == verdict
