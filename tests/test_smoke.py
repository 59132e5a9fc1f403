"""The real CLI trains a tiny recipe end to end."""

import json

from conftest import run_dirs, tiny_recipe, write_recipe


def test_tiny_run_completes_and_writes_its_record(cli, tmp_path):
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe())
    result = cli("run", recipe)
    assert result.code == 0, result.err
    (run,) = run_dirs(tmp_path / "runs")
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed"
    for name in ("recipe.yaml", "metrics.csv", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
