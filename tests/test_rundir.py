"""The run directory's append-only JSON lines survive a write cut short by a kill."""

import json

from dltrain.rundir import RunDir


def test_an_append_after_a_torn_line_drops_the_torn_part_and_keeps_every_whole_line(tmp_path):
    run = RunDir(tmp_path)
    run.append_jsonl("d.jsonl", [{"step": 1}, {"step": 2}])
    with open(tmp_path / "d.jsonl", "ab") as handle:
        handle.write(b'{"step": 3, "grad')  # what a SIGKILL in the middle of a write leaves
    run.append_jsonl("d.jsonl", [{"step": 4}])
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 4]


def test_a_file_holding_only_a_torn_line_is_emptied_before_appending(tmp_path):
    (tmp_path / "d.jsonl").write_bytes(b'{"step": 1')
    RunDir(tmp_path).append_jsonl("d.jsonl", [{"step": 2}])
    assert (tmp_path / "d.jsonl").read_text() == '{"step": 2}\n'
