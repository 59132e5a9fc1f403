"""The run directory's append-only JSON lines survive a write cut short by a kill."""

import json

from dltrain.rundir.writer import RunDir


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


# --- background writes: checkpoints and metrics.csv leave the training thread -----------------

import csv  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

from dltrain.rundir.writer import BackgroundWrites, MetricsTable, atomic_write  # noqa: E402
from dltrain.core.signals import stop_signals  # noqa: E402
from reliability_tools import temp_files  # noqa: E402


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dltrain-writes"]


def test_background_writes_land_in_the_order_submitted_and_wait_returns_once_all_are_done(tmp_path):
    writes, seen = BackgroundWrites(), []
    for i in range(10):
        writes.submit(lambda i=i: (time.sleep(0.002), seen.append(i)))
    writes.wait()
    assert seen == list(range(10))
    writes.close()
    assert not _writer_threads()  # a finished run leaves no thread behind


def test_a_writer_left_open_ends_by_itself_once_idle(monkeypatch):
    """A forgotten close() cannot keep a process alive: the worker (not a daemon) ends when idle."""
    monkeypatch.setattr(BackgroundWrites, "IDLE_SECONDS", 0.1)
    writes = BackgroundWrites()
    writes.submit(lambda: None)
    writes.wait()
    deadline = time.monotonic() + 5
    while _writer_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _writer_threads()
    done = []
    writes.submit(lambda: done.append(1))  # a later write starts a new worker
    writes.close()
    assert done == [1] and not _writer_threads()


def test_a_failed_background_write_cancels_the_writes_after_it_and_is_raised_to_the_submitter(tmp_path):
    writes, seen = BackgroundWrites(), []
    release = threading.Event()

    def fails():
        release.wait(5)
        raise OSError(28, "No space left on device")

    writes.submit(fails)
    writes.submit(lambda: seen.append("after"))  # queued behind the failure: must never run
    release.set()
    with pytest.raises(OSError, match="No space"):
        writes.wait()
    with pytest.raises(OSError, match="No space"):
        writes.submit(lambda: seen.append("later"))
    assert seen == []


def test_submit_waits_while_the_limit_of_pending_writes_is_reached():
    """A disk slower than training slows training down; checkpoints do not pile up in memory."""
    writes = BackgroundWrites()
    release = threading.Event()
    for _ in range(BackgroundWrites.LIMIT):
        writes.submit(lambda: release.wait(5))
    extra = threading.Thread(target=writes.submit, args=(lambda: None,))
    extra.start()
    extra.join(0.2)
    assert extra.is_alive()  # blocked: LIMIT writes pending
    release.set()
    extra.join(5)
    assert not extra.is_alive()
    writes.close()


def test_a_forced_stop_during_a_background_write_stops_training_at_once_and_the_file_is_complete(tmp_path):
    """Signals interrupt only the main thread: a second Ctrl-C is not held back by a write on the
    writer thread (no deferral there), and that write still finishes."""
    target = tmp_path / "last.pt"
    target.write_text("epoch 1")
    inside, release = threading.Event(), threading.Event()

    def slow_write(handle):
        inside.set()
        release.wait(5)  # a slow disk: the write is in progress when the signals come
        handle.write("epoch 2, complete")

    writes = BackgroundWrites()
    with stop_signals() as request:
        writes.submit(lambda: atomic_write(target, slow_write))
        assert inside.wait(5)
        os.kill(os.getpid(), signal.SIGINT)  # graceful request: noted
        assert request.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the impatient second one: stops the main thread now
            time.sleep(2)
        assert target.read_text() == "epoch 1"  # still the old file while the write goes on
        release.set()
        writes.close()
    assert target.read_text() == "epoch 2, complete" and not temp_files(tmp_path)


def _full_rendering(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return out.getvalue()


def test_metrics_rendered_a_row_at_a_time_equal_the_whole_table_rendered_at_once():
    table, rows = MetricsTable(), []
    for epoch in range(1, 8):
        row = {"epoch": epoch, "loss": 1 / epoch, "lr": 0.1}
        if epoch >= 4:
            row["grad_norm"] = float(epoch)  # a column appears part way: the header must grow
        if epoch == 6:
            row["loss"] = float("nan")
        rows.append(row)
        assert table.text(rows) == _full_rendering(rows)
    resumed = [dict(r) for r in rows[:3]]  # a resumed run's rows: other objects, fewer of them
    assert table.text(resumed) == _full_rendering(resumed)


# --- one write for last.pt and best.pt; fsyncs only where durability needs them ---------------

import errno  # noqa: E402


def _fsyncs(monkeypatch) -> list[str]:
    """Count fsyncs, by the name of what was synced (a file or a folder)."""
    seen, real = [], os.fsync

    def fsync(fd):
        seen.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_last_and_best_become_one_file_written_and_fsynced_once(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    run.save_checkpoint("last.pt", {"epoch": 1})
    fsyncs = _fsyncs(monkeypatch)
    run.save_checkpoint("last.pt", {"epoch": 2}, previous="previous.pt", also="best.pt")
    last, best = run.checkpoints / "last.pt", run.checkpoints / "best.pt"
    assert last.read_bytes() == best.read_bytes() and last.stat().st_ino == best.stat().st_ino
    assert len([f for f in fsyncs if f.endswith(".tmp")]) == 1  # the data, once
    assert fsyncs.count("checkpoints") == 1  # every rename, once
    run.save_checkpoint("last.pt", {"epoch": 3}, previous="previous.pt")  # not an improvement
    import torch
    assert torch.load(best, weights_only=True) == {"epoch": 2}  # a new last.pt leaves best.pt alone
    assert torch.load(last, weights_only=True) == {"epoch": 3}
    assert torch.load(run.checkpoints / "previous.pt", weights_only=True) == {"epoch": 2}
    assert not temp_files(tmp_path)


def test_without_hard_links_best_is_a_durable_copy(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "link", no_links)
    run = RunDir(tmp_path)
    fsyncs = _fsyncs(monkeypatch)
    run.save_checkpoint("last.pt", {"epoch": 1}, also="best.pt")
    last, best = run.checkpoints / "last.pt", run.checkpoints / "best.pt"
    assert last.read_bytes() == best.read_bytes() and last.stat().st_ino != best.stat().st_ino
    assert len([f for f in fsyncs if f.endswith(".tmp")]) == 2 and not temp_files(tmp_path)


def test_a_best_checkpoint_that_cannot_be_placed_is_an_error_naming_it_and_leaves_no_temp_file(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(dst) == "best.pt":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match=r"Input/output error: '.*best\.pt'"):
        run.save_checkpoint("last.pt", {"epoch": 1}, also="best.pt")
    assert not temp_files(tmp_path)


def test_metrics_of_an_epoch_are_not_fsynced_and_those_of_the_run_end_are(tmp_path, monkeypatch):
    """Epoch rewrites of metrics.csv skip fsync (the checkpoint holds the same rows); the end's is durable."""
    run = RunDir(tmp_path)
    fsyncs = _fsyncs(monkeypatch)
    run.write_metrics([{"epoch": 1, "loss": 0.5}], durable=False)
    assert fsyncs == [] and (tmp_path / "metrics.csv").read_text().startswith("epoch,loss")
    run.write_metrics([{"epoch": 1, "loss": 0.5}])
    assert len(fsyncs) == 2  # the file, then its folder
