"""SIGINT and SIGTERM during training: finish the step, save a checkpoint, stop as `interrupted`.

The first signal only sets a flag; the loop looks at it after every optimizer step (one attribute
read, no syscall), writes a checkpoint and ends the run with exit code 128 + signal number
(130 for SIGINT, 143 for SIGTERM). A second signal stops at once (KeyboardInterrupt), except
while the main thread is writing a file: durable writes run in a `deferred()` section, and a
signal that arrives inside one takes effect only when the write has finished, so it can never
leave a half-written file behind. Writes handed to the background writer thread are never cut
short (signals interrupt only the main thread), and its thread is not a daemon: a process
stopped at once still finishes the write in progress before it exits. Once training is over,
signals are only noted until the run's final records (summary.json, run.json) are written. The
previous handlers are restored afterwards, unless the run's exit code became the command's
(`settle`): then nothing that arrives later may change it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by the first stop signal; read by the training loop after every step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.finishing = False  # training is over, the run's records are being written: never cut that short

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "signal"

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


class _Deferral:
    """Nesting depth of durable writes in progress, and whether a forced stop waits for them."""

    depth = 0
    pending = False


@contextlib.contextmanager
def deferred():
    """A section that a forced stop (second signal) must not cut in half: a file write.

    Only the main thread counts: Python runs signal handlers there, so only there can a forced
    stop cut a write short. A write on another thread (rundir.BackgroundWrites) is never
    interrupted, and must not hold up a forced stop of the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _Deferral.depth += 1
    try:
        yield
    finally:
        _Deferral.depth -= 1
    if _Deferral.depth == 0 and _Deferral.pending:
        _Deferral.pending = False
        raise KeyboardInterrupt  # the forced stop asked for during the write


class _Settled:
    code: int | None = None  # the command's exit code, once decided


def settle(code: int) -> None:
    """The command's exit code is decided (its run's records are written): from now until the
    process exits, SIGINT and SIGTERM are ignored, so that a Ctrl-C while the result is printed
    or the interpreter shuts down (torch's teardown takes a second or more) cannot turn a
    completed run's 0 into 130, or into a death by signal. SIG_IGN rather than a Python handler:
    Python puts SIG_DFL back in place of its own handlers while it shuts down. `unsettle` undoes
    it for in-process callers (tests call the CLI's main many times in one process)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _Settled.code = code
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def settled_code() -> int | None:
    return _Settled.code


def unsettle(handlers: dict) -> None:
    """Forget a settled exit code and put `handlers` (from `current_handlers()`) back."""
    _Settled.code = None
    if threading.current_thread() is threading.main_thread():
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def current_handlers() -> dict:
    return {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}


@contextlib.contextmanager
def stop_signals():
    """Install graceful SIGINT/SIGTERM handlers for the duration; yields the StopRequest.

    Outside the main thread Python cannot install handlers: the request then never fires and
    signals keep their previous meaning."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(signum, frame):
        if request.finishing:
            print(f"\n{signal.Signals(signum).name}: the run is writing its final records; a moment",
                  file=sys.stderr, flush=True)
        elif request.signum is None:
            request.signum = signum
            print(f"\n{request.name}: finishing this step, then saving a checkpoint "
                  "(send it again to stop at once)", file=sys.stderr, flush=True)
        elif _Deferral.depth:
            _Deferral.pending = True
            print(f"\n{signal.Signals(signum).name}: a file is being written; stopping as soon as it is complete",
                  file=sys.stderr, flush=True)
        else:
            raise KeyboardInterrupt

    previous = current_handlers()
    for sig in STOP_SIGNALS:
        signal.signal(sig, handle)
    try:
        yield request
    finally:
        if _Settled.code is None:  # settled: the signals stay ignored until the process exits
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        _Deferral.pending = False
