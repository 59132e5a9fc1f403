"""The Optuna study behind a sweep: its storage, its fingerprint, its trial queue.

A sweep's trials are planned up front as WAITING trials in the study's queue (one per `slot`:
each grid point, or 0..trials-1), and every worker, on this machine or another, claims them
one at a time with an atomic WAITING -> RUNNING update. So each planned trial is run exactly once
however many workers there are; a re-run plans only the slots not yet done, which is how a
sweep continues. Optuna's own `optimize` loop would instead create new trials until a count
is reached, which overshoots with several workers.

The claim is atomic on PostgreSQL (Optuna updates the row under SELECT ... FOR UPDATE). SQLite
ignores FOR UPDATE and Python's sqlite3 starts a transaction only at the first write, so two
processes could both read WAITING and both claim; `_serialize_sqlite` makes every transaction
BEGIN IMMEDIATE (one writer at a time, reads included), which closes that gap.
"""

from __future__ import annotations

import re
import threading
import time
import warnings
from pathlib import Path

from dltrain.core.errors import UsageError

SLOT = "dltrain_slot"  # user attr: which planned trial this is
SPACE = "dltrain_space"  # study user attr: the search space fingerprint (SweepSpec.fingerprint)
RECIPE = "dltrain_recipe"  # study user attr: the recipe the trials are built from (without `sweep`)
HEARTBEAT_S = 5  # a running trial records a heartbeat this often ...
GRACE_S = 60  # ... and is failed as stale (then re-planned) when none came for this long
READY_WAIT_S = 120  # a second process waits this long for the first to finish planning a new study


def quiet_optuna() -> None:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def storage_url(storage: str | None, runs_root: Path) -> str:
    """A URL as given; a file path (default <runs-dir>/sweeps.db) as an absolute sqlite:/// URL."""
    if storage is not None and "://" in storage:
        return storage
    path = Path(storage) if storage is not None else Path(runs_root) / "sweeps.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def shown_url(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)  # never print a password


def open_storage(url: str):
    """Optuna's RDBStorage with heartbeats; retried briefly (two processes may create the tables at once)."""
    import optuna
    import sqlalchemy.exc

    quiet_optuna()
    sqlite = url.startswith("sqlite")
    engine_kwargs = {"connect_args": {"timeout": 60}} if sqlite else {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                                                 grace_period=GRACE_S)
            break
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            if attempt == 4:
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                raise UsageError(f"cannot open the sweep storage {shown_url(url)}: {reason}") from None
            time.sleep(0.5 * (attempt + 1))
        except ImportError:
            raise UsageError(f"no database driver for {shown_url(url)}: install dltrain[postgres] "
                             "(psycopg 3, SQLAlchemy's driver for postgresql:// URLs)") from None
    if sqlite:
        _serialize_sqlite(storage.engine)
    return storage


def _serialize_sqlite(engine) -> None:
    from sqlalchemy import event

    def no_implicit_begin(dbapi_connection, record):
        dbapi_connection.isolation_level = None  # sqlite3 would BEGIN (deferred) only before a write

    def begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", no_implicit_begin)
    event.listen(engine, "begin", begin_immediate)
    engine.dispose()  # connections made before the listeners are dropped


def open_study(storage, name: str, direction: str, sampler=None, pruner=None):
    """(study, created): create the study, or load it when it exists (another process may win the race)."""
    import optuna
    try:
        return optuna.create_study(storage=storage, study_name=name, direction=direction, sampler=sampler,
                                   pruner=pruner), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner), False


def wait_until_planned(study) -> None:
    """A study created by another process at this moment is ready once it holds its fingerprint."""
    deadline = time.monotonic() + READY_WAIT_S
    while SPACE not in study.user_attrs:
        if time.monotonic() > deadline:
            raise UsageError(f"study `{study.study_name}` exists but was never planned by dltrain "
                             f"(no `{SPACE}` after {READY_WAIT_S}s); use another sweep.name")
        time.sleep(0.5)


def check_fingerprint(study, space: dict, recipe: dict, where: str) -> None:
    """Refuse to continue a study with a different search space, or trials built from another recipe."""
    for attr, now, what in ((SPACE, space, "search space"), (RECIPE, recipe, "recipe (outside `sweep`)")):
        before = study.user_attrs.get(attr)
        if before != now:
            changes = "; ".join(differences(before, now)) or "stored fingerprint is missing"
            raise UsageError(f"study `{study.study_name}` in {where} was made with a different {what}: {changes}. "
                             f"Re-running the same sweep continues it; for a new search use another "
                             f"`sweep.name` (e.g. sweep.name={study.study_name}-2) or storage")


def differences(before, now, path: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(now, dict):
        out = []
        for key in list(before) + [k for k in now if k not in before]:
            out += differences(before.get(key), now.get(key), f"{path}.{key}" if path else str(key))
        return out
    return [] if before == now else [f"{path or 'value'}: {before!r} -> {now!r}"]


def counted(trial) -> bool:
    """Does this trial hold its slot? Not when it was interrupted, went stale, or was surplus."""
    from optuna.trial import TrialState
    return trial.state != TrialState.FAIL or "error" in trial.user_attrs


def plan(study, points: list[dict]) -> int:
    """Queue one WAITING trial for each slot that no trial holds; returns how many were queued."""
    held = {t.user_attrs.get(SLOT) for t in study.get_trials(deepcopy=False) if counted(t)}
    queued = 0
    for slot, params in enumerate(points):
        if slot not in held:
            study.enqueue_trial(params, user_attrs={SLOT: slot})
            queued += 1
    return queued


def claim(study, storage):
    """(trial, trial_id) for the next WAITING trial, now RUNNING and ours; None when the queue is empty."""
    import optuna
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return optuna.Trial(study, trial_id), trial_id
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def is_surplus(study, trial) -> bool:
    """Two processes re-planning the same study at once can queue a slot twice: the later one yields."""
    slot = trial.user_attrs.get(SLOT)
    return any(t.number < trial.number and t.user_attrs.get(SLOT) == slot and counted(t)
               for t in study.get_trials(deepcopy=False))


class Heartbeat:
    """Records the trial's heartbeat in a thread while it runs, so a killed worker's trial goes stale."""

    def __init__(self, storage, trial_id: int):
        self.storage, self.trial_id = storage, trial_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="dltrain-heartbeat", daemon=True)

    def _beat(self) -> None:
        while True:
            self.storage.record_heartbeat(self.trial_id)
            if self.stop.wait(HEARTBEAT_S):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
