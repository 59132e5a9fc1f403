"""Nothing a run reads can run code: checkpoints load with weights_only=True only, recipes only
through the safe YAML loader, components only by registry name."""

from __future__ import annotations

import os
import re
import shutil

import pytest
import torch

from conftest import REPO, run_dirs, tiny_recipe, write_recipe
from reliability_tools import one_torch_thread, signal_self_at_step, stateful_recipe, status  # noqa: F401


class RunsCode:
    """A pickle payload: unpickling it calls os.system (creating a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def poisoned_checkpoint(path, marker) -> None:
    good = torch.load(path, weights_only=True)
    good["callbacks"]["payload"] = RunsCode(marker)  # looks like a checkpoint, carries a payload
    torch.save(good, path)


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(cli, tmp_path, monkeypatch):
    signal_self_at_step(monkeypatch, 4)
    assert cli("run", write_recipe(tmp_path / "s.yaml", stateful_recipe())).code == 130
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    (run,) = run_dirs(tmp_path / "runs")
    marker = tmp_path / "code-ran"
    shutil.copy(run / "checkpoints/previous.pt", tmp_path / "previous.pt")
    poisoned_checkpoint(run / "checkpoints/last.pt", marker)
    poisoned_checkpoint(run / "checkpoints/previous.pt", marker)

    refused = cli("resume", run)
    assert refused.code == 2 and not marker.exists()
    assert refused.err.count("refused: it refers to code") == 2 and "posix.system" in refused.err

    shutil.copy(tmp_path / "previous.pt", run / "checkpoints/previous.pt")  # one good checkpoint left
    resumed = cli("resume", run)
    assert resumed.code == 0, resumed.err
    assert "last.pt: refused" in resumed.err and "using checkpoints/previous.pt" in resumed.err
    assert not marker.exists()
    assert status(run)["resumed"][0]["checkpoint"] == "previous.pt"


def test_every_torch_load_in_the_package_is_weights_only():
    calls = []
    for path in (REPO / "dltrain").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        calls += [(path.name, m.group(0)) for m in re.finditer(r"torch\.load\([^)]*\)", text)]
    assert calls, "the checkpoint loader should be found"
    assert all("weights_only=True" in call for _, call in calls), calls


@pytest.mark.parametrize("where", ["file", "override"])
def test_yaml_that_would_run_code_is_refused(cli, tmp_path, where):
    marker = tmp_path / "code-ran"
    payload = f"!!python/object/apply:os.system [\"touch {marker}\"]"
    doc = tiny_recipe()
    if where == "file":
        text = write_recipe(tmp_path / "r.yaml", doc).read_text().replace("seed: 0", f"seed: {payload}")
        recipe = write_recipe(tmp_path / "r.yaml", text)
        result = cli("validate", recipe)
    else:
        result = cli("validate", write_recipe(tmp_path / "r.yaml", doc), f"seed={payload}")
    assert result.code == 2 and not marker.exists()
    assert "python/object/apply:os.system" in result.err and "refused" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("key, value", [
    ("optimizer", "torch.optim.SGD"),
    ("model", {"arch": "os:system"}),
    ("loss", {"name": "builtins.eval"}),
    ("model", {"arch": "mlp", "hidden": [8], "activation": "torch.nn.ReLU"}),
])
def test_components_come_only_from_the_registries(cli, tmp_path, key, value):
    result = cli("validate", write_recipe(tmp_path / "r.yaml", tiny_recipe(**{key: value})))
    assert result.code == 2 and "unknown" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "runs").exists()
