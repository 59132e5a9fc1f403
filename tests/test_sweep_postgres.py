"""A real PostgreSQL server (Debian's `postgresql` package; .ci/run installs it) serves two
concurrent `dltrain sweep` processes, as on two machines, on one study: every planned trial runs once."""

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from conftest import REPO, run_dirs, tiny_recipe, write_recipe


def server_binaries() -> Path | None:
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)  # Debian keeps them off PATH
    found = shutil.which("initdb") or (versions[0] if versions else None)
    return Path(found).resolve().parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throwaway server in a temp dir on a free localhost port; as the `postgres` user when we are root
    (the server refuses to run as root)."""
    bindir = server_binaries()
    if bindir is None:
        print("skipped: PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql")
    pytest.importorskip("psycopg", reason="psycopg missing: pip install 'dltrain[postgres]'")
    as_user: list[str] = []
    home = Path(tempfile.mkdtemp(prefix="dltrain-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        os.chown(home, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = home / "data", free_port()

    def pg(*args, **kwargs):
        return subprocess.run(as_user + [str(a) for a in args], check=True, capture_output=True, text=True,
                              timeout=120, **kwargs)

    try:
        pg(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")
        pg(bindir / "pg_ctl", "-D", data, "-l", home / "server.log", "-w", "-o",
           f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def test_postgres_serves_two_concurrent_sweep_processes_on_one_study(tmp_path, postgres_url):
    recipe = write_recipe(tmp_path / "s.yaml", tiny_recipe(
        train={"epochs": 2}, log={"tensorboard": False},
        data={"name": "moons", "n_samples": 200, "batch_size": 32, "val_fraction": 0.2},
        sweep={"method": "random", "trials": 6, "storage": postgres_url,
               "params": {"optimizer.lr": {"low": 1.0e-3, "high": 0.3, "log": True}}}))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    machines = [tmp_path / "machine-a", tmp_path / "machine-b"]  # each its own runs dir, as on two hosts
    procs = [subprocess.Popen([sys.executable, "-m", "dltrain", "sweep", str(recipe), "--runs-dir", str(m)],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for m in machines]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    starts = sorted("new study" if "new study" in out else "continuing" for out, _ in outputs)
    assert starts == ["continuing", "new study"]  # both on the same study: one made it, one joined
    trials = sorted(json.loads((run / "run.json").read_text())["sweep"]["trial"]
                    for machine in machines for run in run_dirs(machine) if (run / "run.json").is_file())
    assert trials == list(range(6)), outputs  # every planned trial exactly once, across both processes
    study = optuna.load_study(study_name="tiny-random", storage=postgres_url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    assert len({t.params["optimizer.lr"] for t in study.trials}) == 6  # the two processes drew different points
    print("trials per process:", [len([r for r in run_dirs(m) if (r / 'run.json').is_file()]) for m in machines])
