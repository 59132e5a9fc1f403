"""Shared fixtures: tiny recipes and the real CLI, in-process (fast) or in a subprocess."""

from __future__ import annotations

import os

# As dltrain's CLI does before torch loads (cli.quiet_thread_waits): CI machines are shared and small.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def tiny_recipe(**sections) -> dict:
    """A recipe that trains in well under a second: 2-D moons, one small hidden layer."""
    doc = {
        "name": "tiny",
        "seed": 0,
        "device": "cpu",
        "data": {"name": "moons", "n_samples": 200, "batch_size": 32},
        "model": {"arch": "mlp", "hidden": [16]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 3},
    }
    for key, value in sections.items():
        doc[key] = value
    return doc


def write_recipe(path: Path, doc: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run `dltrain ARGS...` in-process with tmp_path as the working directory."""
    from dltrain.cli import main

    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def run_subprocess(*args: str, cwd: Path, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """The real entry point in a fresh interpreter (for signals, kills, import behaviour)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.update(kwargs.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "dltrain", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def run_in_terminal(*args: str, cwd: Path, columns: int, timeout: float = 120) -> str:
    """The real entry point on a pseudo-terminal `columns` wide; its screen text, ANSI codes removed."""
    import fcntl
    import pty
    import re
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": str(columns), "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "dltrain", *map(str, args)], cwd=cwd, env=env,
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    proc.wait(timeout=timeout)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", text).replace("\r", "")


def widest(text: str) -> int:
    from rich.cells import cell_len
    return max(cell_len(line.rstrip()) for line in text.splitlines())
