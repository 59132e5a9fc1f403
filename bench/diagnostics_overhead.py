"""Epoch time with diagnostics at their default interval against the same run with diagnostics off.

    PYTHONPATH=. python bench/diagnostics_overhead.py [RECIPE ...] [--epochs 30]

Both runs go through the real `runner.execute` in one process, on two threads that take turns
epoch by epoch (a baton passed in the epoch events), so machine noise hits both alike; only one
trains at any moment. An epoch is timed from its start to the end of every callback's
on_epoch_end, so the diagnostics' own epoch-end work (probe passes, histograms, the jsonl file)
counts. The first and last rounds are dropped (warm-up; the other run's setup and teardown). Each
comparison is made twice, each configuration taking the first turn once, and the epochs pooled.
Prints median and mean epoch times and their ratios; the target is a median ratio <= 1.10.

On a shared machine wall time is mostly other people's load, so torch runs on one thread here
(`--threads`) and the CPU time of the training thread is reported beside the wall time: that
counts the work done, not the waiting.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dltrain.recipe.load import load_recipe  # noqa: E402
from dltrain.runner.execute import execute  # noqa: E402
from dltrain.train.events import Callback  # noqa: E402


class Baton:
    def __init__(self):
        self.turn = 0
        self.done = [False, False]
        self.ready = threading.Barrier(2)
        self.cond = threading.Condition()


class TakeTurns(Callback):
    """Runs its epochs only when it holds the baton; records how long each epoch took."""

    def __init__(self, baton: Baton, me: int):
        self.baton, self.me = baton, me
        self.times: list[float] = []
        self.cpu: list[float] = []
        self.started = self.started_cpu = 0.0

    def on_fit_start(self, state):
        self.baton.ready.wait()  # both runs are built and initialized: from here on they alternate

    def on_epoch_start(self, state):
        with self.baton.cond:
            self.baton.cond.wait_for(lambda: self.baton.turn == self.me or self.baton.done[1 - self.me])
        self.started, self.started_cpu = time.perf_counter(), time.thread_time()

    def on_epoch_end(self, state, logs):
        self.times.append(time.perf_counter() - self.started)  # after every other callback's epoch end
        self.cpu.append(time.thread_time() - self.started_cpu)
        self._pass()

    def on_fit_end(self, state):
        with self.baton.cond:
            self.baton.done[self.me] = True
        self._pass()

    def _pass(self):
        with self.baton.cond:
            self.baton.turn = 1 - self.me
            self.baton.cond.notify_all()


def measure(recipe_path: Path, epochs: int, root: Path) -> dict[str, dict[str, list[float]]]:
    """Two interleaved pairs of runs, one with `off` taking the first turn and one with `on` first
    (measured: whichever goes second runs ~5% faster here), pooled."""
    pooled = {"off": {"wall": [], "cpu": []}, "on": {"wall": [], "cpu": []}}
    for order in (("off", "on"), ("on", "off")):
        times = measure_pair(recipe_path, epochs, root / "-".join(order), order)
        for name in pooled:
            for clock in ("wall", "cpu"):
                pooled[name][clock] += times[name][clock]
    return pooled


def measure_pair(recipe_path: Path, epochs: int, root: Path, order: tuple[str, str]) -> dict:
    overrides = [f"train.epochs={epochs}", "train.early_stopping=null"]
    switch = {"off": "log.diagnostics=false", "on": "log.diagnostics=true"}
    configs = {name: overrides + [switch[name]] for name in order}
    baton = Baton()
    turns = {name: TakeTurns(baton, i) for i, name in enumerate(configs)}
    errors = []

    def run(name):
        try:
            execute(load_recipe(recipe_path, configs[name]), root / name, reporter=turns[name], argv=[])
        except BaseException as exc:  # report, and let the other thread finish
            errors.append(exc)
            baton.ready.abort()

    threads = [threading.Thread(target=run, args=(name,)) for name in configs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return {name: {"wall": turn.times[1:-1], "cpu": turn.cpu[1:-1]} for name, turn in turns.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", type=Path,
                        default=[REPO / "recipes" / "quickstart.yaml", REPO / "recipes" / "diagnose_sigmoid20.yaml"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    import torch
    from dltrain.recipe.schema import LogSpec
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); diagnostics every "
          f"{LogSpec().diagnostics_every} steps (the default); 2 x {args.epochs} epochs per configuration, interleaved")
    print(f"{'recipe':26s} {'clock':5s} {'off median':>10s} {'on median':>10s} {'ratio':>6s}   "
          f"{'off mean':>9s} {'on mean':>9s} {'ratio':>6s}")
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes:
            times = measure(recipe, args.epochs, Path(tmp) / recipe.stem)
            for clock in ("wall", "cpu"):
                off, on = times["off"][clock], times["on"][clock]
                med = statistics.median(on) / statistics.median(off)
                mean = statistics.mean(on) / statistics.mean(off)
                print(f"{recipe.name:26s} {clock:5s} {statistics.median(off) * 1e3:8.1f}ms {statistics.median(on) * 1e3:8.1f}ms "
                      f"{med:6.3f}   {statistics.mean(off) * 1e3:7.1f}ms {statistics.mean(on) * 1e3:7.1f}ms {mean:6.3f}")


if __name__ == "__main__":
    main()
