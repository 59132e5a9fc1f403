"""The shared vocabulary has one home each: run statuses (exit code, finished, resumable), exit codes,
metric names with their direction, and the run directory's file names."""

from __future__ import annotations


import re

import pytest

from dltrain.core import status as status_module
from dltrain.core.status import EXIT_SEVERITY, Exit, RunStatus, worst


def documented_statuses() -> dict[str, tuple[int, bool, bool]]:
    """The table in core/status.py's docstring: word -> (exit code, finished, resumable)."""
    rows = {}
    for line in status_module.__doc__.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (int(cells[1]), cells[2] == "yes", cells[3] == "yes")
    return rows


def test_every_status_has_the_exit_code_and_answers_its_documented_table_gives():
    table = documented_statuses()
    assert set(table) == {s.value for s in RunStatus}
    for status in RunStatus:
        assert (status.exit_code, status.finished, status.resumable) == table[status.value], status
        assert isinstance(status.exit_code, Exit)


def test_only_completed_and_early_stopped_runs_are_pooled_and_only_finished_or_doomed_ones_refuse_resume():
    assert {s for s in RunStatus if s.finished} == {RunStatus.COMPLETED, RunStatus.EARLY_STOPPED}
    refused = {s for s in RunStatus if not s.resumable}
    assert refused == {RunStatus.COMPLETED, RunStatus.EARLY_STOPPED, RunStatus.PRUNED, RunStatus.DIVERGED}
    assert all(s.final_because for s in refused)  # resume says why


def test_a_status_is_the_word_on_disk():
    import json
    assert RunStatus.EARLY_STOPPED == "early_stopped" and f"{RunStatus.EARLY_STOPPED}" == "early_stopped"
    assert json.dumps({"status": RunStatus.DIVERGED}) == '{"status": "diverged"}'
    assert RunStatus.read("pruned") is RunStatus.PRUNED
    assert RunStatus.read("exploded") is RunStatus.UNKNOWN and RunStatus.read(None) is RunStatus.UNKNOWN


def test_exit_codes_are_the_documented_ones_and_a_batch_exits_with_its_worst():
    assert [int(e) for e in Exit] == [0, 1, 2, 3, 130, 143]
    assert set(EXIT_SEVERITY) == set(Exit)
    assert worst([0, 3, 0]) == 3 and worst([3, 1]) == 1 and worst([1, 2]) == 2 and worst([2, 143, 130]) == 130
    assert worst([]) == 0


@pytest.mark.parametrize("table", ["dltrain.views.runs:STATUS_STYLE", "dltrain.features.hparams:TENSORBOARD_STATUS"])
def test_every_view_of_statuses_covers_every_status(table):
    import importlib
    module, name = table.split(":")
    assert set(getattr(importlib.import_module(module), name)) == set(RunStatus)


def status_literals(path) -> list[int]:
    """Lines where a status word is a string literal in a collection, a dict key or a comparison."""
    import ast
    words = {s.value for s in RunStatus}
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            spelt = node.elts
        elif isinstance(node, ast.Dict):
            spelt = node.keys
        elif isinstance(node, ast.Compare):
            spelt = [node.left, *node.comparators]
        else:
            continue
        lines += [n.lineno for n in spelt if isinstance(n, ast.Constant) and n.value in words]
    return lines


# Optuna's trial states (complete, pruned, fail, ...) are another vocabulary than a run's
OTHER_VOCABULARY = {"sweep/results.py"}


def test_no_module_spells_a_status_table_of_its_own():
    """Statuses are RunStatus members everywhere: no tuple, dict or comparison of status words."""
    from pathlib import Path
    package = Path(status_module.__file__).parents[1]
    found = [f"{p.relative_to(package)}:{line}" for p in sorted(package.rglob("*.py"))
             if p.name != "status.py" and str(p.relative_to(package)) not in OTHER_VOCABULARY
             for line in status_literals(p)]
    assert not found, found


# ---------------------------------------------------------------------------------------------
# metrics and their direction

def test_a_metric_direction_comes_from_the_table_of_known_metrics_not_from_its_name():
    from dltrain.core.metrics import DIRECTION, default_mode
    assert {m: default_mode(f"val_{m}") for m in DIRECTION} == {"loss": "min", "accuracy": "max", "mae": "min",
                                                                 "rmse": "min"}
    assert default_mode("train_accuracy") == default_mode("test_accuracy") == default_mode("accuracy") == "max"
    for unknown in ("val_top5_accuracy", "val_f1", "balanced_accuracy"):  # no guess from the ending
        with pytest.raises(ValueError, match="known direction"):
            default_mode(unknown)


def test_every_recorded_metric_has_a_direction_and_every_split_of_it_can_be_monitored():
    from dltrain.core.metrics import (CLASSIFICATION_METRICS, DIRECTION, EPOCH_METRICS, MONITORABLE,
                                      REGRESSION_METRICS)
    assert set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS) == set(DIRECTION)
    assert set(MONITORABLE) == set(EPOCH_METRICS) == {f"{s}_{m}" for s in ("train", "val") for m in DIRECTION}


def test_what_the_progress_line_and_show_print_are_the_recorded_epoch_metrics():
    from dltrain.core.metrics import EPOCH_METRICS
    from dltrain.features.progress import format_logs
    from dltrain.views.runs import EPOCH_COLUMNS
    logs = {name: 0.5 for name in EPOCH_METRICS}
    assert format_logs(logs).split("  ") == [f"{name} 0.5000" for name in EPOCH_METRICS]
    assert [c for c in EPOCH_COLUMNS if c in EPOCH_METRICS] == list(EPOCH_METRICS)


def test_early_stopping_and_a_sweep_check_their_metric_and_resolve_its_mode_alike():
    from pydantic import ValidationError

    from dltrain.recipe.schema import EarlyStoppingSpec
    from dltrain.recipe.sweep import SweepSpec
    params = {"optimizer.lr": [0.1]}
    assert EarlyStoppingSpec(monitor="val_accuracy").mode == SweepSpec(metric="val_accuracy", params=params).mode == "max"
    assert EarlyStoppingSpec(monitor="val_mae").mode == SweepSpec(metric="val_mae", params=params).mode == "min"
    assert EarlyStoppingSpec(monitor="val_accuracy", mode="min").mode == "min"
    messages = []
    for make in (lambda: EarlyStoppingSpec(monitor="val_acuracy"), lambda: SweepSpec(metric="val_acuracy", params=params)):
        with pytest.raises(ValidationError) as caught:
            make()
        messages.append(caught.value.errors()[0]["msg"])
    assert messages[0] == messages[1] and "did you mean `val_accuracy`" in messages[0]


# ---------------------------------------------------------------------------------------------
# the run directory's layout

def layout_names() -> set[str]:
    from pathlib import Path

    from dltrain.rundir import layout
    files = {v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str) and Path(v).suffix}
    return files | {layout.CHECKPOINTS}


def spelt_names(path, names: set[str]) -> list[int]:
    """Lines where a string literal is one of `names` (docstrings and messages that mention a file aside)."""
    import ast
    return [n.lineno for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in names]


def test_every_name_inside_a_run_directory_is_spelt_only_in_layout_py():
    from pathlib import Path
    names = layout_names()
    assert {"recipe.yaml", "run.json", "metrics.csv", "summary.json", "error.txt", "run.lock", "last.pt", "best.pt",
            "previous.pt", "diagnostics.jsonl", "forensics.json", "landscape.json", "landscape.png"} <= names
    package = Path(status_module.__file__).parents[1]
    found = [f"{p.relative_to(package)}:{line}" for p in sorted(package.rglob("*.py")) if p.name != "layout.py"
             for line in spelt_names(p, names)]
    assert not found, found


def test_tensorboard_writers_open_the_layout_folders_through_one_helper():
    from pathlib import Path
    package = Path(status_module.__file__).parents[1]
    opening = [str(p.relative_to(package)) for p in sorted(package.rglob("*.py"))
               if "SummaryWriter(" in p.read_text()]
    assert opening == ["rundir/writer.py"]


def test_the_writer_and_the_reader_see_the_same_files(tmp_path):
    from dltrain.rundir.layout import RunLayout
    from dltrain.rundir.reader import load_run
    from dltrain.rundir.writer import RunDir
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    run.update_run_info(status=RunStatus.COMPLETED)
    run.write_summary({"status": RunStatus.COMPLETED, "epochs": 2})
    run.write_recipe("name: r\n")
    read = load_run(run.path)
    assert read.status is RunStatus.COMPLETED and read.summary["epochs"] == 2 and read.recipe == {"name": "r"}
    files = [n for n, v in vars(RunLayout).items() if isinstance(v, property)]
    assert all(getattr(run, n) == getattr(read, n) for n in files) and "info_file" in files


def test_the_status_table_of_docs_runs_md_lists_every_status_a_run_records():
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "runs.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \| [\d(),A-Z ]*\| (?:yes|no) \|", text, re.M))
    assert documented == {s.value for s in RunStatus} - {"unknown"}


# ---------------------------------------------------------------------------------------------
# one way to name a run: show, resume and model.from

def fake_runs(root, *names):
    """Run directories started in the order given (the last is the newest)."""
    import json
    for i, name in enumerate(names):
        (root / name).mkdir(parents=True)
        (root / name / "run.json").write_text(json.dumps({"status": "completed", "started": f"2026-01-01T00:00:0{i}"}))
    return [root / n for n in names]


def test_a_run_is_named_by_its_directory_its_name_its_recipe_or_a_unique_prefix(tmp_path):
    from dltrain.core.errors import UsageError
    from dltrain.rundir.reader import find_run
    root = tmp_path / "runs"
    old, new, other = fake_runs(root, "tiny-20260101-000000-aaaa", "tiny-20260102-000000-bbbb",
                                "tiny-long-20260103-000000-cccc")
    assert find_run(None, root).path == other  # the newest of all
    assert find_run(str(old), tmp_path / "elsewhere").path == old  # a directory
    assert find_run(old.name, root).path == old  # a name
    assert find_run("tiny", root).path == new  # a recipe's newest run, not tiny-long's
    assert find_run(str(root / "tiny"), tmp_path / "elsewhere").path == new  # ... under the folder a path gives
    assert find_run("tiny-l", root).path == other  # a unique prefix
    assert find_run("tiny", root, where=lambda r: r.path != new).path == old
    with pytest.raises(UsageError, match=r"`tiny-2026` names 2 runs .*give the full name"):
        find_run("tiny-2026", root)
    with pytest.raises(UsageError, match=r"no run directory `tiny-20260101-000000-aaab`, and no run named .* "
                                         r"under `.*runs`.*did you mean `tiny-20260101-000000-aaaa`"):
        find_run("tiny-20260101-000000-aaab", root)


def test_model_from_a_recipe_name_takes_its_newest_run_that_has_a_checkpoint(tmp_path):
    from dltrain.core.errors import RecipeError
    from dltrain.models.transfer import resolve_source
    old, new = fake_runs(tmp_path / "runs", "a-20260101-000000-aaaa", "a-20260102-000000-bbbb")
    (old / "checkpoints").mkdir()
    (old / "checkpoints" / "last.pt").write_bytes(b"")
    assert resolve_source(str(tmp_path / "runs" / "a")) == old / "checkpoints" / "last.pt"
    (old / "checkpoints" / "best.pt").write_bytes(b"")
    assert resolve_source(str(old)) == old / "checkpoints" / "best.pt"
    with pytest.raises(RecipeError, match="has no checkpoints/best.pt or checkpoints/last.pt"):
        resolve_source(str(new))
    with pytest.raises(RecipeError, match=r"no run directory `.*runs/b`, .* \(expected a checkpoint file"):
        resolve_source(str(tmp_path / "runs" / "b"))


def test_show_and_resume_name_a_run_alike(cli, tmp_path):
    from conftest import run_dirs, tiny_recipe, write_recipe
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe(train={"epochs": 1}, log={"tensorboard": False}))
    assert cli("run", recipe).code == 0 and cli("run", recipe).code == 0
    newest = run_dirs(tmp_path / "runs")[-1]
    assert cli("show", "tiny").out.startswith(f"{newest.name}  completed")
    resumed = cli("resume", "tiny")
    assert resumed.code == 2 and f"runs/{newest.name} cannot be resumed: it completed" in resumed.err
    missing = cli("resume", "tinny")
    assert missing.code == 2 and "no run directory `tinny`" in missing.err and "did you mean" in missing.err
