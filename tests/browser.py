"""Headless Debian Chromium driven through chromedriver's W3C WebDriver HTTP API (plain urllib: no
Selenium), for the checks of what a user sees in a real browser. `browser()` skips the test, with
the reason, when chromium or chromedriver is not installed (.ci/run installs Debian's)."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _call(method: str, url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["value"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


class Page:
    """One browser session: open a URL, run a script in it until it answers, take a screenshot."""

    def __init__(self, session_url: str):
        self.url = session_url

    def open(self, url: str) -> None:
        _call("POST", self.url + "/url", {"url": url})

    def run(self, script: str):
        return _call("POST", self.url + "/execute/sync", {"script": script, "args": []})

    def wait_for(self, script: str, ready, timeout: float = 120.0):
        """Pages render in the background: run `script` until `ready(its answer)`, or the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.run(script)
            if ready(value) or time.monotonic() > deadline:
                return value
            time.sleep(0.5)

    def screenshot(self, path: Path) -> None:
        Path(path).write_bytes(base64.b64decode(_call("GET", self.url + "/screenshot")))


@contextlib.contextmanager
def browser(width: int = 1400, height: int = 1000):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian: apt-get install chromium chromium-driver)")
    port = _free_port()
    driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://localhost:{port}"
    session = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _call("GET", base + "/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        options = {"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                                "--disable-dev-shm-usage", f"--window-size={width},{height}"]}
        session = _call("POST", base + "/session",
                        {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}})["sessionId"]
        yield Page(f"{base}/session/{session}")
    finally:
        if session is not None:
            with contextlib.suppress(OSError):
                _call("DELETE", f"{base}/session/{session}")
        driver.terminate()
        try:
            driver.wait(timeout=30)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()
