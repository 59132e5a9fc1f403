"""Batches, `list`, `show` and `compare` on runs the tests make, and compare's statistics on runs
whose numbers are written by hand."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import statistics
from pathlib import Path

import pytest
import yaml

from conftest import run_dirs, tiny_recipe, write_recipe

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def call(*args, cwd: Path) -> tuple[int, str, str]:
    """The real CLI in-process, from `cwd` (module-scoped fixtures cannot use the `cli` fixture)."""
    from dltrain.cli import main
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One batch: relu and tanh (2 seeds each) and a diverging learning rate (2 seeds): 6 tiny runs."""
    root = tmp_path_factory.mktemp("batch")
    write_recipe(root / "recipes" / "relu.yaml", tiny_recipe(model={"arch": "mlp", "hidden": [16], "activation": "relu"}))
    write_recipe(root / "recipes" / "tanh.yaml", tiny_recipe(model={"arch": "mlp", "hidden": [16], "activation": "tanh"}))
    write_recipe(root / "recipes" / "wild.yaml", tiny_recipe(model={"arch": "mlp", "hidden": [16], "activation": "relu"},
                                                             optimizer={"name": "adam", "lr": 1.0e30}))
    code, out, err = call("run", "recipes/relu.yaml", "recipes/tanh.yaml", "recipes/wild.yaml", "--seeds", "2",
                          "--batch", "demo", cwd=root)
    return root, code, out, err


def compare_json(root: Path, *args) -> dict:
    code, out, err = call("compare", *args, "--format", "json", cwd=root)
    assert code == 0, err
    return json.loads(out)


def test_a_batch_runs_every_recipe_and_seed_and_exits_with_its_worst_code(batch):
    root, code, out, err = batch
    runs = run_dirs(root / "runs")
    assert len(runs) == 6
    infos = [json.loads((r / "run.json").read_text()) for r in runs]
    assert {i["batch"] for i in infos} == {"demo"}
    assert sorted((yaml.safe_load((r / "recipe.yaml").read_text())["model"]["activation"]["name"], i["seed"])
                  for r, i in zip(runs, infos)) == [("relu", 0), ("relu", 0), ("relu", 1), ("relu", 1),
                                                    ("tanh", 0), ("tanh", 1)]
    assert sorted(i["status"] for i in infos) == ["completed"] * 4 + ["diverged"] * 2
    assert code == 3  # the worst of its runs: 0 (completed) < 3 (diverged)
    assert "dltrain compare demo" in out


def test_compare_shows_only_the_differing_keys_and_groups_seeds(batch):
    root = batch[0]
    doc = compare_json(root)  # no argument: the latest batch
    assert doc["title"].startswith("batch demo")
    assert doc["keys"] == ["model.activation", "optimizer.lr"]
    complete = [r for r in doc["rows"] if r["complete"]]
    assert sorted(r["config"]["model.activation"] for r in complete) == ["relu", "tanh"]
    assert all(r["n"] == 2 and sorted(r["seeds"]) == [0, 1] for r in complete)
    diverged = [r for r in doc["rows"] if not r["complete"]]
    assert len(diverged) == 2 and all(r["n"] == 1 and r["status"] == {"diverged": 1} for r in diverged)
    assert doc["rows"][-2:] == diverged  # shown after the groups, never pooled into them


def test_group_mean_and_std_match_the_runs_own_records(batch):
    root = batch[0]
    doc = compare_json(root, "demo", "--metric", "accuracy")
    for row in (r for r in doc["rows"] if r["complete"]):
        best, test = [], []
        for name in row["runs"]:
            with (root / "runs" / name / "metrics.csv").open() as handle:
                best.append(max(float(r["val_accuracy"]) for r in csv.DictReader(handle)))
            test.append(json.loads((root / "runs" / name / "summary.json").read_text())["test"]["test_accuracy"])
        assert row["best"]["mean"] == pytest.approx(statistics.mean(best))
        assert row["best"]["std"] == pytest.approx(statistics.stdev(best))
        assert row["test"]["mean"] == pytest.approx(statistics.mean(test))
        assert row["best"]["name"] == "best val_accuracy"


def test_a_train_metric_asked_by_name_is_compared_on_the_training_split(batch):
    root = batch[0]
    doc = compare_json(root, "demo", "--metric", "train_loss")
    assert doc["split"] == "train"
    for row in (r for r in doc["rows"] if r["complete"]):
        best = []
        for name in row["runs"]:
            with (root / "runs" / name / "metrics.csv").open() as handle:
                best.append(min(float(r["train_loss"]) for r in csv.DictReader(handle)))
        assert row["best"]["name"] == "best train_loss"
        assert row["best"]["mean"] == pytest.approx(statistics.mean(best))
    assert compare_json(root, "demo", "--metric", "val_loss")["split"] == "val"
    from dltrain.rundir.reader import all_runs
    from dltrain.views.compare import build
    from dltrain.views.curves import panels
    comparison = build(all_runs(root / "runs"), title="demo", metric="train_loss")
    assert [p[1] for p in panels(comparison)] == ["train_loss", "val_loss"]  # the gap's two sides, not one twice


def test_csv_parses_back_with_one_row_per_group_or_unfinished_run(batch):
    root = batch[0]
    code, out, err = call("compare", "demo", "--format", "csv", cwd=root)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 4
    assert [r["complete"] for r in rows] == ["yes", "yes", "no", "no"]
    assert set(rows[0]) >= {"model.activation", "n", "best_val_loss_mean", "best_val_loss_std", "test_loss_mean",
                            "p_value", "significance"}
    assert float(rows[0]["best_val_loss_mean"]) <= float(rows[1]["best_val_loss_mean"])  # sorted: best first
    assert rows[0]["significance"] == "best"


def test_markdown_is_one_well_formed_table(batch):
    root = batch[0]
    code, out, err = call("compare", "demo", "--format", "markdown", cwd=root)
    assert code == 0, err
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 4  # header, separator, 2 groups, 2 unfinished runs
    widths = {line.replace("\\|", "").count("|") for line in table}
    assert len(widths) == 1
    assert set(table[1].replace("|", "")) == {"-"}
    assert "model.activation" in table[0] and "p vs best" in table[0]
    assert "Welch's t-test" in out


def test_table_names_the_test_and_marks_unfinished_runs(batch):
    root = batch[0]
    code, out, err = call("compare", cwd=root)
    assert code == 0, err
    assert "Welch's t-test (scipy.stats.ttest_ind_from_stats, equal_var=False" in out
    assert "diverged: non-finite loss (nan) at epoch 1" in out
    assert out.count("1 ✗") == 2 and "never pooled" in out


def test_sort_by_a_key_and_by_time(batch):
    root = batch[0]
    by_key = compare_json(root, "--sort", "model.activation")
    assert [r["config"]["model.activation"] for r in by_key["rows"] if r["complete"]] == ["relu", "tanh"]
    by_time = compare_json(root, "--sort", "time")
    times = [r["time"]["mean"] for r in by_time["rows"] if r["complete"]]
    assert times == sorted(times)


def test_plot_is_a_valid_png(batch, tmp_path):
    from PIL import Image
    root = batch[0]
    target = tmp_path / "curves.png"
    code, out, err = call("compare", "--plot", target, cwd=root)
    assert code == 0, err
    assert target.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(target) as image:
        image.verify()
    import matplotlib.image
    pixels = matplotlib.image.imread(target)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 400
    assert pixels[..., :3].std() > 0.05  # something was drawn, not a blank canvas


def test_list_is_newest_first_and_show_tells_one_run(batch):
    root = batch[0]
    code, out, err = call("list", cwd=root)
    assert code == 0, err
    started = {p.name: json.loads((p / "run.json").read_text())["started"] for p in run_dirs(root / "runs")}
    newest_first = sorted(started, key=lambda n: (started[n], n), reverse=True)
    assert [out.index(n) for n in newest_first] == sorted(out.index(n) for n in newest_first)
    assert out.count("diverged") == 2 and out.count("completed") == 4 and "3/3" in out

    completed = next(n for n in started if json.loads((root / "runs" / n / "run.json").read_text())["status"] == "completed")
    code, out, err = call("show", completed, cwd=root)
    assert code == 0, err
    assert "resolved recipe" in out and "activation:" in out
    assert "per epoch" in out and "val_loss" in out and "best" in out
    assert "how it ended" in out and "completed: completed all 3 epochs" in out


# ---------------------------------------------------------------------------------------------
# statistics on run directories written by hand: numbers with known answers


def fake_run(root: Path, name: str, *, activation: str, seed: int, val_loss: list[float], test_loss: float,
             status: str = "completed") -> Path:
    path = root / name
    path.mkdir(parents=True)
    recipe = {"name": "fake", "seed": seed, "model": {"arch": "mlp", "activation": {"name": activation}},
              "train": {"epochs": len(val_loss)}}
    (path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (path / "run.json").write_text(json.dumps({"status": status, "stop_reason": status, "seed": seed,
                                               "started": f"2026-01-01T00:00:{len(list(root.iterdir())):02d}",
                                               "monitor": {"name": "val_loss", "mode": "min"},
                                               "wall_time_s": 1.0, "parameters": 10}))
    rows = ["epoch,train_loss,val_loss"] + [f"{e},{v + 0.1},{v}" for e, v in enumerate(val_loss, 1)]
    (path / "metrics.csv").write_text("\n".join(rows) + "\n")
    (path / "summary.json").write_text(json.dumps({"epochs": len(val_loss), "test": {"test_loss": test_loss}}))
    return path


def test_mean_std_and_welch_test_against_hand_computed_numbers(cli, tmp_path):
    root = tmp_path / "runs"
    # relu: best val_loss 1, 2, 3 -> mean 2, sample std 1.  tanh: 4, 5, 6 -> mean 5, std 1.
    for seed, best in enumerate([1.0, 2.0, 3.0]):
        fake_run(root, f"relu-{seed}", activation="relu", seed=seed, val_loss=[best + 1, best], test_loss=0.1 * seed)
    for seed, best in enumerate([4.0, 5.0, 6.0]):
        fake_run(root, f"tanh-{seed}", activation="tanh", seed=seed, val_loss=[best, best + 1], test_loss=0.5)
    fake_run(root, "tanh-broken", activation="tanh", seed=9, val_loss=[0.001, 0.002], test_loss=0.0, status="failed")
    result = cli("compare", "relu-*", "tanh-*", "--format", "json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    relu, tanh, broken = doc["rows"]
    assert doc["keys"] == ["model.activation"]
    assert relu["config"] == {"model.activation": "relu"} and relu["n"] == 3
    assert (relu["best"]["mean"], relu["best"]["std"]) == (pytest.approx(2.0), pytest.approx(1.0))
    assert (tanh["best"]["mean"], tanh["best"]["std"]) == (pytest.approx(5.0), pytest.approx(1.0))
    assert tanh["final"]["mean"] == pytest.approx(6.0)  # final epochs: 5, 6, 7
    assert relu["test"]["mean"] == pytest.approx(0.1) and relu["test"]["std"] == pytest.approx(0.1)
    # Welch: t = (5 - 2) / sqrt(1/3 + 1/3) = 3.674, df = 4 (equal variances and sizes): two-sided p = 0.0213
    assert tanh["p_value"] == pytest.approx(0.02131, abs=2e-4) and tanh["significance"] == "*"
    assert relu["significance"] == "best" and relu["p_value"] is None
    # the failed run's 0.001 would be the best value of all: it must stay out of tanh's statistics
    assert broken["complete"] is False and tanh["n"] == 3 and broken["significance"] is None
    assert "Welch" in doc["test"]


def test_a_single_run_group_is_not_tested(cli, tmp_path):
    root = tmp_path / "runs"
    fake_run(root, "relu-0", activation="relu", seed=0, val_loss=[1.0], test_loss=0.1)
    fake_run(root, "relu-1", activation="relu", seed=1, val_loss=[2.0], test_loss=0.1)
    fake_run(root, "tanh-0", activation="tanh", seed=0, val_loss=[4.0], test_loss=0.1)
    doc = json.loads(cli("compare", "relu-*", "tanh-0", "--format", "json").out)
    assert [r["significance"] for r in doc["rows"]] == ["best", "n<2"]


# ---------------------------------------------------------------------------------------------
# bad input: a clear message, exit code 2, nothing written


def test_compare_with_no_runs_is_an_error(cli, tmp_path):
    (tmp_path / "runs").mkdir()
    result = cli("compare", "--plot", "out.png")
    assert result.code == 2 and "no runs under" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "out.png").exists()
    result = cli("compare", "--runs-dir", "nowhere")
    assert result.code == 2 and "does not exist" in result.err


def test_compare_with_an_unknown_metric_names_the_recorded_ones(cli, tmp_path):
    fake_run(tmp_path / "runs", "a", activation="relu", seed=0, val_loss=[1.0], test_loss=0.1)
    result = cli("compare", "a", "--metric", "acuracy")
    assert result.code == 2
    assert "unknown metric `acuracy`" in result.err and "loss" in result.err


def test_compare_on_a_directory_that_is_not_a_run(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("compare", "empty")
    assert result.code == 2 and "not a run directory" in result.err
    result = cli("show", "empty")
    assert result.code == 2 and "not a run directory" in result.err


def test_compare_bad_options(cli, tmp_path):
    fake_run(tmp_path / "runs", "a", activation="relu", seed=0, val_loss=[1.0], test_loss=0.1)
    for args, message in [(("a", "--format", "xml"), "unknown format `xml`"),
                          (("a", "--sort", "bestt"), "did you mean `best`"),
                          (("a", "--plot", "curves.jpg"), "ending in .png"),
                          (("nonexistent",), "no run or batch named `nonexistent`"),
                          (("zz-*",), "matches no run")]:
        result = cli("compare", *args)
        assert result.code == 2, (args, result.err)
        assert message in result.err, (args, result.err)


def test_a_batch_with_one_bad_recipe_runs_nothing(cli, tmp_path):
    write_recipe(tmp_path / "good.yaml", tiny_recipe())
    write_recipe(tmp_path / "bad.yaml", tiny_recipe(optimizer={"name": "adam", "lrr": 0.1}))
    result = cli("run", "good.yaml", "bad.yaml", "--seeds", "2")
    assert result.code == 2 and "did you mean `lr`" in result.err
    assert run_dirs(tmp_path / "runs") == []
    result = cli("run", "missing-*.yaml")
    assert result.code == 2 and "matches no recipe file" in result.err


def test_single_run_with_overrides_is_unchanged(cli, tmp_path):
    write_recipe(tmp_path / "tiny.yaml", tiny_recipe())
    result = cli("run", "tiny.yaml", "train.epochs=1", "model.activation=tanh")
    assert result.code == 0, result.err
    (run,) = run_dirs(tmp_path / "runs")
    info = json.loads((run / "run.json").read_text())
    assert "batch" not in info and info["status"] == "completed"
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    assert recipe["train"]["epochs"] == 1 and recipe["model"]["activation"]["name"] == "tanh"
    assert math.isfinite(json.loads((run / "summary.json").read_text())["best_value"])


def test_list_and_show_a_run_that_never_recorded_its_end(cli, tmp_path):
    fake_run(tmp_path / "runs", "done", activation="relu", seed=0, val_loss=[1.0, 0.5], test_loss=0.1)
    killed = tmp_path / "runs" / "killed"
    killed.mkdir()
    (killed / "run.json").write_text(json.dumps({"status": "running", "pid": 4242, "host": "somewhere",
                                                 "started": "2026-01-02T00:00:00"}))
    result = cli("list")
    assert result.code == 0, result.err
    assert result.out.index("killed") < result.out.index("done")  # newest first
    result = cli("show", "killed")
    assert result.code == 0, result.err
    assert "no epoch finished" in result.out and "pid 4242 on somewhere" in result.out
    doc = json.loads(cli("compare", "runs", "--format", "json").out)
    assert [(r["runs"], r["complete"]) for r in doc["rows"]] == [(["done"], True), (["killed"], False)]


def test_list_without_runs(cli, tmp_path):
    (tmp_path / "runs").mkdir()
    result = cli("list")
    assert result.code == 0 and "no runs under runs" in result.err
    result = cli("list", "--runs-dir", "elsewhere")
    assert result.code == 2 and "does not exist" in result.err


def test_a_list_value_in_a_key_is_shown_as_written_not_taken_as_markup(cli, tmp_path):
    root = tmp_path / "runs"
    for name, act in [("a", "relu"), ("b", "[relu, tanh]")]:
        fake_run(root, name, activation=act, seed=0, val_loss=[1.0], test_loss=0.1)
    result = cli("compare", "a", "b")
    assert result.code == 0, result.err
    assert "[relu, tanh]" in result.out


def test_a_batch_goes_on_after_a_failed_run_and_stops_at_an_interrupt(monkeypatch, tmp_path):
    """The batch's exit code is its worst run's; Ctrl-C (130) ends the batch there."""
    from types import SimpleNamespace

    from rich.console import Console

    import dltrain.runner.batch
    import dltrain.runner.execute
    import dltrain.views.result

    def run_batch_with(codes):
        started = []

        def fake_execute(recipe, runs_root, **kwargs):
            started.append(recipe.seed)
            return SimpleNamespace(exit_code=codes[len(started) - 1])

        monkeypatch.setattr(dltrain.runner.execute, "execute", fake_execute)
        monkeypatch.setattr(dltrain.views.result, "print_result", lambda console, result: None)
        monkeypatch.setattr(dltrain.runner.batch, "print_batch", lambda console, name, root: None)
        recipes = [SimpleNamespace(name="r", seed=s, log=SimpleNamespace(progress="epochs")) for s in range(len(codes))]
        code = dltrain.runner.batch.run_batch(recipes, tmp_path, "b", Console(file=io.StringIO()), [])
        return code, started

    assert run_batch_with([0, 0, 0]) == (0, [0, 1, 2])
    assert run_batch_with([0, 3, 0]) == (3, [0, 1, 2])
    assert run_batch_with([1, 3, 0]) == (1, [0, 1, 2])  # failed is worse than diverged
    assert run_batch_with([3, 130, 0]) == (130, [0, 1])  # interrupted: the third run never starts


def test_a_sweep_is_compared_by_default_as_a_batch_named_after_its_study(tmp_path):
    import json as jsonmod
    from dltrain.rundir.reader import all_runs, latest_batch
    root = tmp_path / "runs"
    for i, (name, info) in enumerate([("older", {"batch": "b1"}), ("t0", {"sweep": {"name": "study", "trial": 0}}),
                                      ("t1", {"sweep": {"name": "study", "trial": 1}})]):
        run = root / name
        run.mkdir(parents=True)
        (run / "run.json").write_text(jsonmod.dumps({"status": "completed", "started": f"2026-01-01T00:00:0{i}",
                                                     **info}))
    assert {r.batch for r in all_runs(root)} == {"b1", "study"}
    name, runs = latest_batch(root)
    assert name == "study" and sorted(r.path.name for r in runs) == ["t0", "t1"]


# ---------------------------------------------------------------------------------------------
# what a person reads: labels, pictures and tables of many runs (issue 14)


def two_inits(root: Path) -> None:
    """he_normal at lr 0.001 vs xavier_normal at lr 0.1 (2 seeds each) and an sgd run that diverges."""
    base = tiny_recipe(model={"arch": "mlp", "hidden": [16], "init": "he_normal"})
    write_recipe(root / "he.yaml", base)
    write_recipe(root / "xavier.yaml", {**base, "model": {**base["model"], "init": "xavier_normal"},
                                        "optimizer": {"name": "adam", "lr": 0.1}})
    write_recipe(root / "wild.yaml", {**base, "optimizer": {"name": "sgd", "lr": 1.0e30}})


@pytest.fixture(scope="module")
def inits(tmp_path_factory):
    root = tmp_path_factory.mktemp("inits")
    two_inits(root)
    code, out, err = call("run", "he.yaml", "xavier.yaml", "--seeds", "2", "--batch", "inits", cwd=root)
    assert code == 0, err
    code, out, err = call("run", "wild.yaml", "--batch", "wild", cwd=root)
    assert code == 3, err
    return root


def test_labels_name_only_the_keys_somebody_varied_at_their_leaf(inits):
    from dltrain.rundir.reader import select
    from dltrain.views.compare import build, config_label
    from dltrain.views.curves import label
    runs = select(["inits", "wild"], inits / "runs")
    c = build(runs, title="t")
    # init's own parameters (mode, gain, ...) and adam's (betas, eps, ...) differ only because the
    # component was swapped: they are not keys anybody varied
    assert c.keys == ["model.init", "optimizer", "optimizer.lr"]
    labels = sorted(label(c, row) for row in c.rows)
    assert labels == ["init=he_normal, optimizer=adam, lr=0.01 (n=2)", "init=he_normal, optimizer=sgd, lr=1e+30 (diverged)",
                      "init=xavier_normal, optimizer=adam, lr=0.1 (n=2)"]
    assert all(len(config_label(c, row)) < 60 for row in c.rows)


def test_short_values_and_names():
    from dltrain.views.compare import short_names, short_value
    assert short_value(0.0031622776601683794) == "0.00316" and short_value(0.1) == "0.1"
    assert short_value([0.9, 0.9990000000000001]) == "[0.9, 0.999]" and short_value(None) == "null"
    assert short_names(["model.init", "optimizer.lr", "model.init.mode", "schedule.mode"]) == {
        "model.init": "init", "optimizer.lr": "lr", "model.init.mode": "init.mode", "schedule.mode": "schedule.mode"}


def drawn(fig):
    """Laid out and drawn as savefig does (constrained layout places the legend at draw time)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig).draw()
    return fig


def test_plot_keeps_the_panels_big_draws_log_losses_and_marks_the_diverged_run(inits):
    from dltrain.rundir.reader import select
    from dltrain.views.compare import build
    from dltrain.views.curves import curves_figure
    runs = select(["inits", "wild"], inits / "runs")
    fig = drawn(curves_figure(build(runs, title="inits wild")))
    axes = fig.axes
    assert [ax.get_ylabel().split(" (")[0] for ax in axes] == ["val_loss", "train_loss"]
    assert all(ax.get_xlabel() == "epoch" for ax in axes)
    assert "val_loss by init, optimizer, lr" in fig._suptitle.get_text()
    # the legend is under the panels, not on them, and the panels keep at least half the figure
    legend = fig.legends[0].get_window_extent()
    for ax in axes:
        box = ax.get_tightbbox()  # with its tick labels and axis label
        assert legend.y1 <= box.y0 and ax.get_window_extent().height >= 0.5 * fig.bbox.height
    # the diverged run finished no epoch: an x on each panel's top edge at epoch 1
    crosses = [line for ax in axes for line in ax.lines if line.get_marker() == "x"]
    assert len(crosses) == 2 and all(list(line.get_xdata()) == [1] for line in crosses)
    off = curves_figure(build(runs, title="t"), log_y="off")
    assert {ax.get_yscale() for ax in off.axes} == {"linear"}


def test_twelve_groups_keep_the_panels_at_least_half_the_figure(cli, tmp_path):
    from dltrain.rundir.reader import all_runs
    from dltrain.views.compare import build
    from dltrain.views.curves import curves_figure
    for i in range(12):
        fake_run(tmp_path / "runs", f"r{i}", activation=f"activation_with_a_long_name_{i}", seed=0,
                 val_loss=[1.0, 0.5 / (i + 1), 0.01], test_loss=0.1)
    fig = drawn(curves_figure(build(all_runs(tmp_path / "runs"), title="twelve")))
    assert all(ax.get_window_extent().height >= 0.5 * fig.bbox.height for ax in fig.axes)
    assert {ax.get_yscale() for ax in fig.axes} == {"log"}  # 1.0 down to 0.01: two decades


def test_log_y_rejects_a_bad_value(inits):
    code, out, err = call("compare", "inits", "--plot", "x.png", "--log-y", "yes", cwd=inits)
    assert code == 2 and "--log-y" in err and "auto, on, off" in err


def test_identical_values_in_a_group_give_a_test_and_no_warning(cli, tmp_path):
    import warnings
    from dltrain.rundir.reader import all_runs
    from dltrain.views.compare import build
    for seed in (0, 1):
        fake_run(tmp_path / "runs", f"same{seed}", activation="relu", seed=seed, val_loss=[0.3], test_loss=0.1)
    for seed, v in ((0, 0.1), (1, 0.2)):
        fake_run(tmp_path / "runs", f"tanh{seed}", activation="tanh", seed=seed, val_loss=[v], test_loss=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = build(all_runs(tmp_path / "runs"), title="t")
    relu = next(r for r in c.rows if r.config["model.activation"] == "relu")
    # Welch with one zero-spread side: t = (0.3 - 0.15) / (0.0707 / sqrt 2), 1 degree of freedom
    assert relu.p_value == pytest.approx(0.2048, abs=1e-3)


@pytest.mark.parametrize("columns", [80, 100])
def test_compare_list_and_show_fit_the_terminal(inits, columns):
    from conftest import run_in_terminal, widest
    screen = run_in_terminal("compare", "inits", "wild", cwd=inits, columns=columns)
    assert widest(screen) <= columns, screen
    assert "init " in screen and "xavier_normal" in screen and "betas" not in screen
    assert f"not shown at {columns} columns: " in screen and "--format csv/json" in screen
    assert "Precision loss" not in screen
    names = [p.name for p in run_dirs(inits / "runs")]
    screen = run_in_terminal("list", cwd=inits, columns=columns)
    assert widest(screen) <= columns, screen
    assert all(name in screen for name in names)  # whole, on one line: it can be copied into `show`
    screen = run_in_terminal("show", names[0], cwd=inits, columns=columns)
    assert widest(screen) <= columns, screen
