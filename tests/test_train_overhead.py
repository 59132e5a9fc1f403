"""The speed benchmark runs, and the loop's cheap bookkeeping changes nothing."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_overhead_benchmark_runs_and_prints_every_contender():
    result = subprocess.run([sys.executable, "bench/overhead.py", "--case", "digits", "--rounds", "2", "--warmup", "0"],
                            cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": ""}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("hand", "dataloader", "dltrain", "loop only"):
        assert f"\n{name} " in result.stdout
