"""The study's trial queue: claims are exclusive across processes, so each planned trial runs once."""

import json
import subprocess
import sys

import pytest

from conftest import REPO
from dltrain.sweep import study as studies

CLAIMER = """
import json, sys
import optuna
from dltrain.sweep import study as studies
url, name, out = sys.argv[1:]
storage = studies.open_storage(url)
study = optuna.load_study(study_name=name, storage=storage)
numbers = []
while (claimed := studies.claim(study, storage)) is not None:
    trial, _ = claimed
    numbers.append(trial.number)
    study.tell(trial, float(trial.number))
json.dump(numbers, open(out, "w"))
"""


@pytest.mark.parametrize("processes", [3])
def test_claims_are_exclusive_across_processes_on_sqlite(tmp_path, processes):
    url = studies.storage_url(str(tmp_path / "queue.db"), tmp_path)
    storage = studies.open_storage(url)
    study, created = studies.open_study(storage, "queue", "minimize")
    assert created and studies.plan(study, [{}] * 40) == 40
    env = {"PYTHONPATH": str(REPO)}
    outs = [tmp_path / f"claimed-{i}.json" for i in range(processes)]
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, url, "queue", str(out)], env=env) for out in outs]
    assert [p.wait(timeout=120) for p in procs] == [0] * processes
    claimed = [json.loads(out.read_text()) for out in outs]
    every = sorted(n for numbers in claimed for n in numbers)
    assert every == list(range(40)), claimed  # none claimed twice, none left behind
    assert studies.plan(study, [{}] * 40) == 0  # every slot is held: planning again adds nothing


def test_plan_requeues_only_slots_lost_to_interruption(tmp_path):
    from optuna.trial import TrialState

    storage = studies.open_storage(studies.storage_url(None, tmp_path))
    study, _ = studies.open_study(storage, "s", "minimize")
    studies.plan(study, [{}] * 3)
    outcomes = {0: ("error", TrialState.FAIL), 1: ("interrupted", TrialState.FAIL), 2: (None, TrialState.COMPLETE)}
    for number, (attr, state) in outcomes.items():
        trial, _ = studies.claim(study, storage)
        if attr:
            trial.set_user_attr(attr, "x")
        study.tell(trial, 1.0 if state == TrialState.COMPLETE else None, state=state)
    # a failed trial keeps its slot (re-running does not retry it); an interrupted one does not
    assert studies.plan(study, [{}] * 3) == 1
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs[studies.SLOT] for t in waiting] == [1]


def test_a_slot_queued_twice_is_run_once(tmp_path):
    storage = studies.open_storage(studies.storage_url(None, tmp_path))
    study, _ = studies.open_study(storage, "s", "minimize")
    study.enqueue_trial({}, user_attrs={studies.SLOT: 0})
    study.enqueue_trial({}, user_attrs={studies.SLOT: 0})  # two processes re-planning at the same moment
    first, _ = studies.claim(study, storage)
    second, _ = studies.claim(study, storage)
    assert not studies.is_surplus(study, first) and studies.is_surplus(study, second)


def test_storage_urls(tmp_path):
    assert studies.storage_url(None, tmp_path / "runs") == f"sqlite:///{(tmp_path / 'runs' / 'sweeps.db').resolve()}"
    assert studies.storage_url("postgresql://u:secret@h:5432/db", tmp_path) == "postgresql://u:secret@h:5432/db"
    assert studies.shown_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
