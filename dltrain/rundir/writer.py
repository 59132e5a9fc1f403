"""The run directory: it owns every write of a run.

Directories are created exclusively (never reusing or overwriting one); every file is written
to a temporary file in the same folder, fsynced, then renamed over the target, so a killed run
leaves either the old or the new file, never a truncated one.
"""

from __future__ import annotations

import collections
import datetime as dt
import io
import json
import os
import secrets
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from dltrain.rundir.layout import RunLayout


def atomic_write(path: Path, write: Callable[[Any], None], *, binary: bool = False,
                 previous: Path | None = None, also: Path | None = None, durable: bool = True) -> None:
    """Write via `write(handle)` into a temp file beside `path`, fsync, then os.replace.

    With `previous`, the file being replaced is kept under that name (moved only once the new
    one is complete on disk), so a valid older copy survives a new one that turns out bad.
    With `also`, that file is replaced by the same new file too: a second name (hard link) for
    it, so the data is written and fsynced once (a copy where the file system has no links).
    `durable=False` skips the fsyncs: the rename still makes the write atomic for a killed
    process, but a power cut may lose it (for files that can be rebuilt from a durable one).
    On any failure the temp file is removed and `path` is untouched; an OSError names the file.
    A second stop signal waits until the write is done (signals.deferred)."""
    from dltrain.core.signals import deferred

    with deferred():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            if exc.errno is None:
                raise
            raise _naming(exc, path) from None
        moved = False
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; the run's files are as readable as any other
            with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as handle:
                write(handle)
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
            if previous is not None and path.exists():
                os.replace(path, previous)
                moved = True
            if also is not None:
                _second_name(Path(tmp), also, durable)
            os.replace(tmp, path)
        except BaseException as exc:
            with _suppress():
                os.unlink(tmp)
            if moved and not path.exists():
                with _suppress():
                    os.replace(previous, path)  # put the old file back where it was
            if isinstance(exc, OSError) and exc.errno is not None:
                named = also if also is not None and exc.filename == str(also) else path  # _second_name's own
                raise _naming(exc, named) from exc
            raise
        if durable:
            _fsync_dir(path.parent)


def _second_name(tmp: Path, target: Path, durable: bool) -> None:
    """Replace `target` by the complete file `tmp`, which keeps its own name: a hard link made
    under a temporary name and renamed over `target`; a copy where links are not supported."""
    import shutil
    link = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        try:
            os.link(tmp, link)
        except OSError:  # no hard links here (some network and FAT file systems): a copy
            shutil.copyfile(tmp, link)
            if durable:
                fd = os.open(link, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        os.replace(link, target)
    except OSError as exc:
        with _suppress():
            os.unlink(link)
        raise type(exc)(exc.errno, exc.strerror, str(target)) from exc


def _naming(exc: OSError, path: Path) -> OSError:
    """The same error, saying which file it was about (`[Errno 28] No space left on device: '.../last.pt'`)."""
    return type(exc)(exc.errno, exc.strerror, str(path))


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once at import: os.umask can only be read by setting it


def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable (POSIX); not possible on every platform
    with _suppress():
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda h: h.write(text))


def write_json(path: Path, value: Any) -> None:
    atomic_write(path, lambda h: h.write(json.dumps(value, indent=2, default=str) + "\n"))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def new_run_dir(runs_root: Path, name: str) -> Path:
    """runs/<name>-<YYYYmmdd-HHMMSS>-<4 hex>/, created exclusively (mkdir fails if it exists),
    so two runs started at the same moment never share, and no existing directory is reused."""
    from dltrain.core.errors import UsageError
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        runs_root.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            path = runs_root / f"{name}-{stamp}-{secrets.token_hex(2)}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as exc:
        raise UsageError(f"cannot create a run directory under {runs_root}: {exc.strerror or exc} "
                         "(choose a writable place with --runs-dir)") from None
    raise UsageError(f"could not create a fresh run directory under {runs_root}")


class BackgroundWrites:
    """File writes run on one worker thread, in the order they were submitted, so that training
    does not wait for the disk (write, fsync, rename) at every epoch's checkpoint.

    What a job writes is fixed when it is submitted (bytes or text made on the submitting thread),
    so a job never reads state that training goes on changing. At most `LIMIT` jobs are pending
    (the one running included); `submit` waits beyond that, so a disk slower than training slows
    training down instead of piling checkpoints up in memory. The first failure cancels the jobs
    after it (a later file must not be written over a failed earlier one) and is raised on the
    submitting thread by every later `submit` and `wait`.

    The worker is not a daemon: a process that is stopped at once (a second Ctrl-C) still
    finishes the write in progress before it exits. It stays up between jobs (starting a thread
    every epoch costs more than the write it saves) until `close`, or `IDLE_SECONDS` without work,
    so a forgotten `close` delays an exit by that much at most."""

    LIMIT = 3  # a metrics.csv and a checkpoint per epoch: the next epoch's pair can wait behind one
    IDLE_SECONDS = 2.0

    def __init__(self) -> None:
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()  # [0] is running
        self._failure: BaseException | None = None
        self._changed = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closing = False

    def submit(self, job: Callable[[], None]) -> None:
        with self._changed:
            while len(self._jobs) >= self.LIMIT and self._failure is None:
                self._changed.wait()
            self._raise_failure()
            self._jobs.append(job)
            self._closing = False
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="dltrain-writes")
                self._worker.start()
            self._changed.notify_all()

    def wait(self) -> None:
        """Until every submitted job is done; raises the first failure."""
        with self._changed:
            while self._jobs and self._failure is None:
                self._changed.wait()
            self._raise_failure()

    def close(self) -> None:
        """`wait`, then end the worker (a later `submit` starts another)."""
        with self._changed:
            self._closing = True
            worker = self._worker
            self._changed.notify_all()
        self.wait()
        if worker is not None and worker is not threading.current_thread():
            worker.join()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _next_job(self) -> Callable[[], None] | None:
        """The job to run next, or None when the worker should end."""
        with self._changed:
            if not self._jobs and not self._closing and self._failure is None:
                self._changed.wait(self.IDLE_SECONDS)
            if not self._jobs or self._failure is not None:
                self._jobs.clear()
                self._worker = None
                self._changed.notify_all()
                return None
            return self._jobs[0]

    def _work(self) -> None:
        while (job := self._next_job()) is not None:
            try:
                job()
            except BaseException as exc:  # raised to the training thread at its next submit or wait
                with self._changed:
                    self._failure = exc
            with self._changed:
                if self._jobs:
                    self._jobs.popleft()
                self._changed.notify_all()


class MetricsTable:
    """metrics.csv's text, kept rendered: an epoch renders only its own new row, unless it brings a
    column the header lacks, or the rows are not the ones rendered before (a resumed run's)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []  # the rows rendered, by identity
        self.columns: list[str] = []
        self.lines: list[str] = []  # header first

    def text(self, rows: list[dict]) -> str:
        known = len(self.rows)
        if len(rows) < known or any(a is not b for a, b in zip(rows, self.rows)):
            self.rows, self.columns, self.lines, known = [], [], [], 0
        columns = list(self.columns)
        for row in rows[known:]:
            columns += [k for k in row if k not in columns]
        if columns != self.columns:  # a new column: every row again, under the new header
            self.columns, self.rows, self.lines, known = columns, [], [_csv_line(columns)], 0
        for row in rows[known:]:
            self.lines.append(_csv_line([_csv_value(row[k]) if k in row else "" for k in self.columns]))
        self.rows = list(rows)
        return "".join(self.lines)


def _csv_line(values: list) -> str:
    import csv
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()


class RunDir(RunLayout):
    """A run's directory and the files in it (their names: layout.py).

    metrics.csv and the checkpoints can be written `later`, by `writes` (a BackgroundWrites):
    `wait_for_writes()` is then due before the run's end is recorded."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.info: dict = {}
        self.writes = BackgroundWrites()
        self._metrics = MetricsTable()

    def wait_for_writes(self) -> None:
        """Until every background write is on disk (raises the first that failed); frees its thread."""
        self.writes.close()

    def _write(self, job: Callable[[], None], later: bool) -> None:
        if later:
            self.writes.submit(job)
        else:
            self.writes.wait()  # an earlier background write of the same file must not land after this one
            job()

    def write_recipe(self, text: str) -> None:
        write_text(self.recipe_file, text)

    def update_run_info(self, **fields: Any) -> None:
        self.info.update(fields)
        write_json(self.info_file, self.info)

    def write_summary(self, summary: dict) -> None:
        write_json(self.summary_file, summary)

    def write_metrics(self, rows: list[dict], *, later: bool = False, durable: bool = True) -> None:
        """The whole metrics.csv, rewritten atomically each epoch (a few KB: cheaper than a torn append).
        `durable=False` skips the fsyncs (see atomic_write): for the epochs of a run, whose rows the
        checkpoint holds too, so a resume rewrites the file whatever a power cut left of it."""
        content = self._metrics.text(rows)
        self._write(lambda: atomic_write(self.metrics_file, lambda h: h.write(content), durable=durable),
                    later)

    def append_jsonl(self, name: str, rows: list[dict], *, sync: bool = True) -> None:
        """Append whole JSON lines with one write: earlier lines are never rewritten, and a kill can at
        worst cut the last line short, which `read_jsonl` skips. `sync=False` leaves the fsync (which
        only matters for a power cut, and costs milliseconds on a busy disk) to a later call."""
        data = "".join(json.dumps(row, default=str) + "\n" for row in rows).encode("utf-8")
        if not data and not sync:
            return
        fd = os.open(self.path / name, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            _drop_torn_last_line(fd)  # a kill mid-write: new lines must not be glued onto the torn one
            if data:
                os.write(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def save_checkpoint(self, name: str, state: dict, previous: str | None = None, *,
                        also: str | None = None, later: bool = False) -> Path:
        """checkpoints/<name>; with `previous`, the checkpoint it replaces is kept under that name;
        with `also`, checkpoints/<also> becomes the same file too (serialized, written and fsynced once).
        The state is serialized here, on the calling thread, even when written `later`."""
        import torch
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getbuffer()
        path = self.checkpoints / name

        def write() -> None:
            atomic_write(path, lambda h: h.write(data), binary=True,
                         previous=self.checkpoints / previous if previous else None,
                         also=self.checkpoints / also if also else None)

        self._write(write, later)
        return path


def _drop_torn_last_line(fd: int) -> None:
    """Truncate a file of lines back to its last newline, if a killed write left a partial line."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    chunk = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - chunk)
        cut = os.pread(fd, end - start, start).rfind(b"\n")
        if cut >= 0:
            os.ftruncate(fd, start + cut + 1)
            return
        end = start
    os.ftruncate(fd, 0)


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)  # shortest round-tripping form
    return value


def read_jsonl(path: Path) -> list[dict]:
    """The complete lines of a JSON-lines file (a line cut short by a kill is skipped)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def event_writer(run_path: Path, folder: str, **options: Any):
    """A TensorBoard SummaryWriter on one of the run's event folders (layout.*_EVENTS)."""
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(log_dir=str(Path(run_path) / folder), **options)


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict:
    """Checkpoints hold plain tensors and numbers; nothing else is ever unpickled."""
    import torch
    return torch.load(path, map_location=map_location, weights_only=True)


def write_event_file(path: Path, summaries: list) -> None:
    """A whole TensorBoard event file of `summaries` (Summary protos) at step 0, written atomically
    under one fixed name, so a rewrite replaces it rather than adding a file beside it."""
    import time

    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    def write(handle) -> None:
        records = RecordWriter(handle)
        now = time.time()
        records.write(event_pb2.Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        for summary in summaries:
            records.write(event_pb2.Event(wall_time=now, step=0, summary=summary).SerializeToString())

    atomic_write(Path(path), write, binary=True, durable=False)
