"""`dltrain board` serves a real TensorBoard on localhost, and every run is an HParams session
that TensorBoard's HParams dashboard groups by configuration (seed repeats together)."""

from __future__ import annotations

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

from conftest import REPO, run_dirs, tiny_recipe, write_recipe

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


def poll(fetch, ready, timeout: float = 60.0):
    """TensorBoard loads event files in the background: ask until the answer is complete."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_board_serves_the_runs_scalars_and_hparams_sessions(cli, tmp_path):
    write_recipe(tmp_path / "relu.yaml", tiny_recipe(model={"arch": "mlp", "hidden": [8], "activation": "relu"},
                                                     train={"epochs": 2}))
    write_recipe(tmp_path / "tanh.yaml", tiny_recipe(model={"arch": "mlp", "hidden": [8], "activation": "tanh"},
                                                     train={"epochs": 2}))
    assert cli("run", "relu.yaml", "tanh.yaml", "--seeds", "2").code == 0
    assert cli("run", "relu.yaml", "optimizer.lr=1e30").code == 3  # diverges: a failed session
    status = {p.name: json.loads((p / "run.json").read_text())["status"] for p in run_dirs(tmp_path / "runs")}
    finished = [name for name, s in status.items() if s == "completed"]
    assert len(status) == 5 and len(finished) == 4

    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    board = subprocess.Popen([sys.executable, "-m", "dltrain", "board", "runs", "--port", "0"], cwd=tmp_path,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = first_line(board.stdout, timeout=120)
        match = re.search(r"(http://localhost:\d+/)", line)
        assert match, line
        url = match.group(1)

        tags = poll(lambda: get_json(url + "data/plugin/scalars/tags"),
                    lambda t: all(f"{r}/validation" in t and r in t for r in finished))
        for run in finished:
            assert "epoch_loss" in tags[f"{run}/validation"] and "epoch_loss" in tags[f"{run}/train"]
            assert "summary/test_loss" in tags[run] and "summary/best_val_loss" in tags[run]

        experiment = get_json(url + "data/plugin/hparams/experiment", {"experimentName": ""})
        hparams = {h["name"]: h for h in experiment["hparamInfos"]}
        assert hparams["model.activation"]["differs"] and hparams["optimizer.lr"]["differs"]
        assert not hparams["data"]["differs"]
        metrics = {(m["name"].get("group", ""), m["name"]["tag"]) for m in experiment["metricInfos"]}
        assert {("validation", "epoch_loss"), ("train", "epoch_loss"), ("", "summary/test_loss")} <= metrics

        groups = get_json(url + "data/plugin/hparams/session_groups",
                          {"experimentName": "", "allowedStatuses": ALL_STATUSES, "startIndex": 0, "sliceSize": 50,
                           "colParams": [{"hparam": "model.activation", "order": "ORDER_ASC"}]})["sessionGroups"]
        by_size = sorted(([s["status"] for s in g["sessions"]] for g in groups), key=len)
        assert by_size == [["STATUS_FAILURE"], ["STATUS_SUCCESS"] * 2, ["STATUS_SUCCESS"] * 2]
    finally:
        board.send_signal(signal.SIGINT)
        try:
            code = board.wait(timeout=30)
        except subprocess.TimeoutExpired:
            board.kill()
            raise
        board.stdout.close()
        board.stderr.close()
    assert code == 0


def test_board_on_a_root_without_runs_is_an_error(cli, tmp_path):
    result = cli("board", "nowhere")
    assert result.code == 2 and "does not exist" in result.err
    (tmp_path / "empty").mkdir()
    result = cli("board", "empty")
    assert result.code == 2 and "holds no runs" in result.err
