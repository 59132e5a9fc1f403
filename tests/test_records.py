"""What a checkpoint holds comes back exactly: the epoch history (kept as JSON text), the python
RNG state (kept as a tensor), and best.pt is the very checkpoint last.pt was when it improved."""

from __future__ import annotations

import json
import math
import random

import torch

from conftest import run_dirs, tiny_recipe, write_recipe
from dltrain.features.checkpoints import HistoryText, decode_history, rng_state, set_rng_state


def test_history_as_json_text_reads_back_the_same_numbers_bit_for_bit():
    rows = [{"epoch": 1, "step": 29, "lr": 0.1 + 0.2, "train_loss": 1 / 3, "val_loss": float("nan"),
             "grad_norm": float("inf"), "penalty": -float("inf"), "seconds": 5e-324, "best": None}]
    back = decode_history(HistoryText().encode(rows))
    assert back[0].keys() == rows[0].keys()
    for key, value in rows[0].items():
        got = back[0][key]
        assert type(got) is type(value)
        assert (math.isnan(got) and math.isnan(value)) if isinstance(value, float) and math.isnan(value) else got == value


def test_history_encoded_an_epoch_at_a_time_equals_it_encoded_at_once():
    history, text = [], HistoryText()
    for epoch in range(1, 6):
        history.append({"epoch": epoch, "loss": 1 / epoch})
        assert text.encode(history) == HistoryText().encode(history)
        assert json.loads(text.encode(history)) == history
    resumed = json.loads(text.encode(history))[:2]  # other row objects: encoded afresh
    assert text.encode(resumed) == HistoryText().encode(resumed)


def test_history_of_checkpoints_written_as_a_list_is_still_read():
    rows = [{"epoch": 1, "loss": 0.5}]
    assert decode_history(rows) == rows and decode_history(rows) is not rows


def test_the_python_rng_state_round_trips_through_a_checkpoint(tmp_path):
    random.seed(7)
    random.gauss(0, 1)  # leaves a cached gaussian in the state
    saved = rng_state()
    torch.save(saved, tmp_path / "rng.pt")
    expected = [random.random() for _ in range(5)] + [random.gauss(0, 1)]
    random.seed(123)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert [random.random() for _ in range(5)] + [random.gauss(0, 1)] == expected


def test_a_python_rng_state_saved_as_a_tuple_is_still_read():
    random.seed(3)
    state = rng_state()
    state["python"] = random.getstate()  # how checkpoints held it before
    expected = random.random()
    random.seed(4)
    set_rng_state(state)
    assert random.random() == expected


def test_best_checkpoint_is_byte_for_byte_the_last_checkpoint_of_the_best_epoch(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(train={"epochs": 3}))
    assert cli("run", recipe).code == 0
    (run,) = run_dirs(tmp_path / "runs")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_epoch"] == 3  # still improving at its last epoch (seeded: always so)
    # improved at the last epoch: serialized once, written as last.pt and as best.pt
    assert (run / "checkpoints/best.pt").read_bytes() == (run / "checkpoints/last.pt").read_bytes()
    best = torch.load(run / "checkpoints/best.pt", weights_only=True)
    assert best["epoch"] == 3 and decode_history(best["history"])[-1]["epoch"] == 3


def test_metrics_csv_is_rewritten_on_a_time_budget_and_complete_at_the_end(cli, tmp_path, monkeypatch):
    from dltrain.features.metrics_file import MetricsFile
    from dltrain.rundir.writer import RunDir

    rewrites = []
    real = RunDir.write_metrics
    monkeypatch.setattr(RunDir, "write_metrics", lambda self, rows, **kw: (rewrites.append(len(rows)),
                                                                             real(self, rows, **kw))[1])
    for seconds, expected in ((0.0, [1, 2, 3, 4, 4]), (1e9, [1, 4])):  # every epoch; the first and the end
        monkeypatch.setattr(MetricsFile, "WRITE_SECONDS", seconds)
        rewrites.clear()
        recipe = write_recipe(tmp_path / f"r{seconds}.yaml", tiny_recipe(train={"epochs": 4}))
        assert cli("run", recipe, "--runs-dir", tmp_path / f"runs{seconds}").code == 0
        assert rewrites == expected
        (run,) = run_dirs(tmp_path / f"runs{seconds}")
        assert len((run / "metrics.csv").read_text().splitlines()) == 5  # header and 4 rows
