"""One process at a time in a run directory: `run.lock`, holding the owner's pid and host.

The authority is an exclusive `flock` on the lock file, held for as long as the run trains:
the kernel drops it when the owner exits in any way (SIGKILL and power loss included), so a
lock file whose flock can be taken is stale by construction and is taken over with a warning.
The pid and host written into the file are there for the messages. (flock needs a POSIX
system; on network file systems it is as good as the file system's lock support.)
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import sys
from pathlib import Path

from dltrain.core.errors import UsageError
from dltrain.rundir.layout import LOCK


class RunLocked(UsageError):
    """The run directory is in use by a live process."""


class RunLock:
    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, run_dir: Path) -> "RunLock":
        path = Path(run_dir) / LOCK
        for _ in range(10):  # retry only if the file was replaced between open and flock
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise RunLocked(f"run directory {run_dir} is in use by pid {owner.get('pid', '?')} on host "
                                f"{owner.get('host', '?')} (since {owner.get('since', '?')}); "
                                f"wait for it to end or stop that process") from None
            if _same_file(fd, path):
                break
            os.close(fd)  # the previous owner released (and unlinked) it meanwhile: take the new file
        else:
            raise RunLocked(f"could not lock {path}: it keeps being replaced")
        stale = _read_owner(fd)
        if stale:
            print(f"warning: taking over a stale lock on {run_dir}: its owner, pid {stale.get('pid', '?')} on "
                  f"host {stale.get('host', '?')}, is gone", file=sys.stderr)
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "since": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        os.fsync(fd)
        return cls(path, fd)

    def release(self) -> None:
        """Unlink while still holding the flock, so nobody can lock the old file in between."""
        if self.fd < 0:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)  # closing drops the flock
        self.fd = -1

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_owner(run_dir: Path) -> dict | None:
    """{pid, host, since} of the live process training in `run_dir`, or None (not running, or killed:
    what `run.json` saying `running` cannot tell apart on its own)."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _read_owner(fd)
        os.close(fd)
        return owner
    os.close(fd)  # we could lock it: nobody holds it
    return None


def process_gone(run_dir: Path, host: object, pid: object) -> bool:
    """True when the process that trained in `run_dir`, pid `pid` on `host` (as run.json records them),
    is known to be gone: it ran on this host, nobody holds the run's lock, and no process has that pid.
    False whenever it may be alive, or ran on another host, where neither can be checked from here."""
    if host != socket.gethostname() or not isinstance(pid, int) or lock_owner(run_dir) is not None:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def _read_owner(fd: int) -> dict:
    raw = os.pread(fd, 4096, 0)
    try:
        owner = json.loads(raw.decode()) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        owner = {"pid": "?", "host": "? (unreadable lock file)"}
    return owner if isinstance(owner, dict) else {}


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
