"""The run directory: it owns every write of a run.

Directories are created exclusively (never reusing or overwriting one); every file is written
to a temporary file in the same folder, fsynced, then renamed over the target, so a killed run
leaves either the old or the new file, never a truncated one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: Path, write: Callable[[Any], None], *, binary: bool = False) -> None:
    """Write via `write(handle)` into a temp file beside `path`, fsync, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


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
    """runs/<name>-<YYYYmmdd-HHMMSS>-<4 hex>/, created exclusively (mkdir fails if it exists)."""
    runs_root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        path = runs_root / f"{name}-{stamp}-{secrets.token_hex(2)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a fresh run directory under {runs_root}")


class RunDir:
    """A run's directory and the files in it (layout: RUNS.md)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.info: dict = {}

    @property
    def recipe_file(self) -> Path:
        return self.path / "recipe.yaml"

    def write_recipe(self, text: str) -> None:
        write_text(self.recipe_file, text)

    def update_run_info(self, **fields: Any) -> None:
        self.info.update(fields)
        write_json(self.path / "run.json", self.info)

    def write_summary(self, summary: dict) -> None:
        write_json(self.path / "summary.json", summary)

    def write_metrics(self, rows: list[dict]) -> None:
        """The whole metrics.csv, rewritten atomically each epoch (a few KB: cheaper than a torn append)."""
        import csv
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]

        def write(handle):
            writer = csv.DictWriter(handle, fieldnames=columns, restval="", extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_value(v) for k, v in row.items()})

        atomic_write(self.path / "metrics.csv", write)

    def append_jsonl(self, name: str, rows: list[dict], *, sync: bool = True) -> None:
        """Append whole JSON lines with one write: earlier lines are never rewritten, and a kill can at
        worst cut the last line short, which `read_jsonl` skips. `sync=False` leaves the fsync (which
        only matters for a power cut, and costs milliseconds on a busy disk) to a later call."""
        data = "".join(json.dumps(row, default=str) + "\n" for row in rows).encode("utf-8")
        if not data and not sync:
            return
        fd = os.open(self.path / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if data:
                os.write(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def save_checkpoint(self, name: str, state: dict) -> Path:
        import torch
        path = self.checkpoints / name
        atomic_write(path, lambda h: torch.save(state, h), binary=True)
        return path


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


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict:
    """Checkpoints hold plain tensors and numbers; nothing else is ever unpickled."""
    import torch
    return torch.load(path, map_location=map_location, weights_only=True)
