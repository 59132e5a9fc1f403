"""`dltrain board` serves a real TensorBoard on localhost, and every run is an HParams session
that TensorBoard's HParams dashboard groups by configuration (seed repeats together)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from conftest import REPO, run_dirs, tiny_recipe, write_recipe

# TensorBoard's start imports much and reads every event file: on a loaded 2-core machine it has
# taken over 30 s, so this is a bound on a hang, not on a speed
START_TIMEOUT = 180
ALL_STATUSES = ["STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING", "STATUS_UNKNOWN"]


def get_json(url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def first_line(stream, timeout: float) -> str:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    return lines.get(timeout=timeout)


def poll(fetch, ready, timeout: float = 120.0):
    """TensorBoard loads event files in the background: ask until the answer is complete."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


@contextlib.contextmanager
def served(root, cwd):
    """`dltrain board ROOT --port 0` in a fresh interpreter; yields its URL, stops it with Ctrl-C."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    board = subprocess.Popen([sys.executable, "-m", "dltrain", "board", str(root), "--port", "0"], cwd=cwd,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = first_line(board.stdout, timeout=START_TIMEOUT)
        match = re.search(r"(http://localhost:\d+/)", line)
        assert match, line + board.stderr.read() if board.poll() is not None else line
        yield match.group(1)
    finally:
        board.send_signal(signal.SIGINT)
        try:
            code = board.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            board.kill()
            raise
        board.stdout.close()
        board.stderr.close()
    assert code == 0


def session_groups(url: str, hparam: str) -> list[dict]:
    return get_json(url + "data/plugin/hparams/session_groups",
                    {"experimentName": "", "allowedStatuses": ALL_STATUSES, "startIndex": 0, "sliceSize": 50,
                     "colParams": [{"hparam": hparam, "order": "ORDER_ASC"}]})["sessionGroups"]


def test_board_serves_the_runs_scalars_and_an_hparams_experiment_of_what_varies(cli, tmp_path):
    write_recipe(tmp_path / "relu.yaml", tiny_recipe(model={"arch": "mlp", "hidden": [8], "activation": "relu"},
                                                     train={"epochs": 2}))
    write_recipe(tmp_path / "tanh.yaml", tiny_recipe(model={"arch": "mlp", "hidden": [8], "activation": "tanh"},
                                                     optimizer={"name": "momentum", "lr": 0.05, "momentum": 0.9},
                                                     train={"epochs": 2}))
    assert cli("run", "relu.yaml", "tanh.yaml", "--seeds", "2").code == 0
    assert cli("run", "relu.yaml", "optimizer.lr=1e30").code == 3  # diverges: a failed session
    status = {p.name: json.loads((p / "run.json").read_text())["status"] for p in run_dirs(tmp_path / "runs")}
    finished = [name for name, s in status.items() if s == "completed"]
    assert len(status) == 5 and len(finished) == 4

    with served("runs", tmp_path) as url:
        tags = poll(lambda: get_json(url + "data/plugin/scalars/tags"),
                    lambda t: all(f"{r}/validation" in t for r in finished))
        for run in finished:  # two TensorBoard runs per run, the curves under one tag in both
            assert "Curves/loss" in tags[f"{run}/validation"] and "Curves/loss" in tags[f"{run}/train"]
            assert {"summary/test_loss", "summary/best_val_loss"} <= set(tags[f"{run}/validation"])
            assert run not in tags and f"{run}/diagnostics" not in tags

        experiment = get_json(url + "data/plugin/hparams/experiment", {"experimentName": ""})
        hparams = {h["name"]: h for h in experiment["hparamInfos"]}
        assert hparams["model.activation"]["differs"] and hparams["optimizer.lr"]["differs"]
        # keys only some runs have (one optimizer's parameters) differ as much as the optimizer
        assert hparams["optimizer.momentum"]["differs"] and hparams["optimizer.betas"]["differs"]
        assert not hparams["data"]["differs"] and not hparams["model.hidden"]["differs"]
        names = [h["name"] for h in experiment["hparamInfos"]]  # the dashboard ticks the first five
        assert all(hparams[n]["differs"] for n in names[:5]) and "model.activation" in names[:5]
        metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
        assert metrics[:5] == ["Curves/loss", "Curves/accuracy", "summary/best_val_loss",
                               "summary/test_loss", "summary/test_accuracy"]

        groups = session_groups(url, "model.activation")
        by_size = sorted(([s["status"] for s in g["sessions"]] for g in groups), key=len)
        assert by_size == [["STATUS_FAILURE"], ["STATUS_SUCCESS"] * 2, ["STATUS_SUCCESS"] * 2]
        done = [s for g in groups for s in g["sessions"] if s["status"] == "STATUS_SUCCESS"]
        assert all({m["name"]["tag"] for m in s["metricValues"]} >= set(metrics[:5]) for s in done)

    # one run served alone (the command every run prints): its HParams row has its numbers
    with served(tmp_path / "runs" / finished[0], tmp_path) as url:
        groups = poll(lambda: session_groups(url, "model.activation"),
                      lambda g: g and len(g[0]["sessions"][0]["metricValues"]) >= 5)
        (session,) = groups[0]["sessions"]
        values = {m["name"]["tag"]: m["value"] for m in session["metricValues"]}
        summary = json.loads((tmp_path / "runs" / finished[0] / "summary.json").read_text())
        assert values["summary/test_loss"] == pytest.approx(summary["test"]["test_loss"], rel=1e-6)


def test_board_on_a_root_without_runs_is_an_error(cli, tmp_path):
    result = cli("board", "nowhere")
    assert result.code == 2 and "does not exist" in result.err
    (tmp_path / "empty").mkdir()
    result = cli("board", "empty")
    assert result.code == 2 and "holds no runs" in result.err


# What Time Series shows: each run-table row's checkbox, the card groups in order, each card's lines
TIME_SERIES = """
const rows = [...document.querySelectorAll('tb-data-table-content-row[data-id]')];
const groups = [...document.querySelectorAll('.group-title')].map(e => e.textContent.trim()).filter(g => g !== 'Pinned');
const lines = {};
for (const title of document.querySelectorAll('scalar-card tb-truncated-path.tag')) {
  lines[title.title] = title.closest('scalar-card').querySelectorAll('svg.ng-star-inserted path').length;
}
return {rows: rows.map(r => [r.dataset.id, Boolean(r.querySelector('input[type=checkbox]')?.checked)]),
        groups, lines};
"""

# What the HParams dashboard (Polymer: inside shadow roots) shows: the ticked keys and metrics, the table's text
HPARAMS = """
const ticked = [], text = [];
function walk(node) {
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const child of node.childNodes) {
    if (child.nodeType === Node.TEXT_NODE && child.textContent.trim()) text.push(child.textContent.trim());
    if (child.nodeType !== Node.ELEMENT_NODE || ['STYLE', 'SCRIPT'].includes(child.tagName)) continue;
    const kind = child.classList;
    if (child.checked && (kind.contains('hparam-checkbox') || kind.contains('metric-checkbox'))) {
      ticked.push(child.textContent.trim());
    }
    walk(child);
  }
}
walk(document.body);
return {ticked, text};
"""


def test_board_in_a_real_browser_shows_every_run_the_curves_first_and_the_varied_keys(cli, tmp_path):
    """Headless Chromium on `dltrain board` over 12 runs (3 settings x 4 seeds): Time Series opens
    with every run enabled and the Curves group first, its loss chart drawing a line per run and
    split; HParams ticks the varied keys and the main metrics, one row per setting."""
    from browser import browser
    settings = {"relu": {"activation": "relu"}, "tanh": {"activation": "tanh"}, "gelu": {"activation": "gelu"}}
    for name, model in settings.items():
        write_recipe(tmp_path / f"{name}.yaml", tiny_recipe(model={"arch": "mlp", "hidden": [8], **model},
                                                           train={"epochs": 2}))
    assert cli("run", "relu.yaml", "tanh.yaml", "gelu.yaml", "optimizer.lr=0.02", "--seeds", "4").code == 0
    runs = [p.name for p in run_dirs(tmp_path / "runs")]
    assert len(runs) == 12

    with served("runs", tmp_path) as url, browser() as page:
        page.open(url + "?forceSVG=true#timeseries")  # SVG lines, countable in the page
        seen = page.wait_for(TIME_SERIES, lambda v: len(v["rows"]) >= 24 and v["lines"].get("Curves/loss", 0) >= 24)
        page.screenshot(tmp_path / "timeseries.png")
        enabled = {run_id.split("/", 1)[1] for run_id, on in seen["rows"] if on}  # after the experiment's id
        assert {f"{run}/{split}" for run in runs for split in ("train", "validation")} <= enabled
        assert all(on for _, on in seen["rows"]), seen["rows"]
        assert seen["groups"][:2] == ["Curves", "Optimizer"], seen["groups"]  # the two Time Series opens
        assert seen["lines"]["Curves/loss"] >= 24  # train and validation of every run, overlaid

        page.open(url + "#hparams")
        seen = page.wait_for(HPARAMS, lambda v: "val loss" in v["ticked"] and v["text"].count("gelu") >= 2)
        page.screenshot(tmp_path / "hparams.png")
        assert seen["ticked"][0] == "model.activation"  # the one varied key, first and ticked
        assert {"val loss", "val accuracy", "best val_loss", "test loss", "test accuracy"} <= set(seen["ticked"])
        assert sum(t.startswith("config-") for t in seen["text"]) == 3  # seed repeats grouped: a row a setting


def test_a_run_keeps_its_hparams_session_where_its_first_process_started_it(tmp_path):
    """New runs hold the session in validation/ (beside the metrics it shows); a run made before
    that layout, resumed, ends the session at the top where it started; the board's experiment
    file at the top of a run served alone is not such a session."""
    from dltrain.features.hparams import session_folder
    from dltrain.rundir.layout import BOARD_EXPERIMENT
    new, old, served_alone = (tmp_path / name for name in ("new", "old", "served"))
    for run in (new, old, served_alone):
        run.mkdir()
    (old / "events.out.tfevents.1700000000.host.1.0").write_bytes(b"")
    (served_alone / BOARD_EXPERIMENT).write_bytes(b"")
    assert [session_folder(r) for r in (new, old, served_alone)] == ["validation", ".", "validation"]
