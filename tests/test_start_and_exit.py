"""A plain run imports only what it uses, and the process ends as soon as its records are written
(the interpreter's teardown, 1.5-4 s with torch loaded, is skipped: exit_now)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import REPO, run_dirs, tiny_recipe, write_recipe

HEAVY = ("scipy", "matplotlib", "optuna", "sklearn", "pandas")


def test_a_plain_digits_run_imports_no_scipy_matplotlib_optuna_or_sklearn_and_ends_complete(tmp_path):
    """The command as `python -m dltrain` runs it (run_command, then exit_now), in a fresh process."""
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data={"name": "digits", "batch_size": 64},
                                                           model={"arch": "mlp", "hidden": [32]}, train={"epochs": 2}))
    driver = textwrap.dedent(f"""
        import sys
        from dltrain.cli import exit_now, run_command
        try:
            run_command(["run", {str(recipe)!r}, "--runs-dir", {str(tmp_path / "runs")!r}])
        except SystemExit as done:
            code = done.code
        print("imported:", sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)
        exit_now(code)
    """)
    done = subprocess.run([sys.executable, "-c", driver], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
                          env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == "imported: []"
    (run,) = run_dirs(tmp_path / "runs")
    assert done.stdout.rstrip().endswith(str(run))  # the last line, flushed: tensorboard --logdir RUN
    import torch
    assert torch.load(run / "checkpoints/last.pt", weights_only=True)["epoch"] == 2
    assert (run / "summary.json").read_text().endswith("}\n")


def test_exit_now_waits_for_working_threads_and_runs_exit_handlers(tmp_path):
    script = textwrap.dedent(f"""
        import atexit, threading, time
        from dltrain.cli import exit_now
        atexit.register(print, "exit handler ran")
        def write():
            time.sleep(0.3)
            open({str(tmp_path / "late.txt")!r}, "w").write("complete")
        threading.Thread(target=write).start()
        print("last line", end="")  # unflushed: exit_now flushes it
        exit_now(3)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 3
    assert (tmp_path / "late.txt").read_text() == "complete"
    assert done.stdout == "last lineexit handler ran\n"


def test_the_tensorboard_command_is_printed_only_for_a_run_with_event_files(cli, tmp_path):
    for tensorboard in (False, True):
        recipe = write_recipe(tmp_path / f"r{tensorboard}.yaml", tiny_recipe(train={"epochs": 1},
                                                                             log={"tensorboard": tensorboard}))
        result = cli("run", recipe, "--runs-dir", tmp_path / f"runs{tensorboard}")
        assert result.code == 0
        assert ("tensorboard --logdir" in result.out) is tensorboard
