"""What `dltrain run` shows while it trains, on a real 80-column pseudo-terminal and in a pipe."""

from __future__ import annotations

import re

from conftest import REPO, run_in_terminal, run_subprocess, tiny_recipe, write_recipe


def test_the_live_line_keeps_epoch_metric_loss_eta_and_bar_in_that_order_at_80_columns(tmp_path):
    # epochs long enough (~190 steps) for the live line's 10 Hz refresh to show each of them
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(train={"epochs": 3}, log={"every_steps": 1},
                                                           data={"name": "moons", "n_samples": 4000, "batch_size": 16}))
    screen = run_in_terminal("run", recipe, cwd=tmp_path, columns=80)
    frames = re.findall(r"epoch [23]/3  val_loss \d\.\d{4}  loss \d\.\d{4} ETA \d:\d\d:\d\d [━╸╺ ]+", screen)
    assert frames, screen
    assert all(len(frame.rstrip()) <= 80 and frame.count("━") >= 20 for frame in frames), frames
    # each finished epoch leaves one line, as Keras's verbose=1 does
    for epoch in (1, 2, 3):
        assert len(re.findall(rf"epoch {epoch}/3  loss \d\.\d{{4}}  acc \d\.\d{{4}}  val_loss \d\.\d{{4}}",
                              screen)) == 1, screen


def test_log_progress_none_shows_no_epoch_and_epochs_shows_plain_lines(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(log={"progress": "none"}))
    screen = run_in_terminal("run", recipe, cwd=tmp_path, columns=80)
    assert "epoch 1/3" not in screen and "ETA" not in screen and "completed" in screen
    recipe = write_recipe(tmp_path / "e.yaml", tiny_recipe(log={"progress": "epochs"}))
    screen = run_in_terminal("run", recipe, cwd=tmp_path, columns=80)
    assert "ETA" not in screen and re.search(r"^epoch 3/3  train_loss", screen, re.M) is not None


def test_a_bad_progress_value_names_the_key_and_the_choices(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(log={"progress": "bars"}))
    result = run_subprocess("validate", recipe, cwd=tmp_path)
    assert result.returncode == 2 and "log.progress" in result.stderr and "bar" in result.stderr
    assert not (tmp_path / "runs").exists() and REPO.is_dir()
