"""Per-epoch cost of the synchronous run records: what a background writer could take off the
training thread.

Measures, per epoch of bench/overhead.py's dltrain run (diagnostics off, 12 epochs, one thread):
the whole epoch, Checkpointer.on_epoch_end (serialize the checkpoint, write last.pt with its
fsyncs and the previous.pt rotation, best.pt when it improves), the checkpoint's serialization
alone (torch.save into memory: what stays on the training thread even with background writes),
and MetricsFile.on_epoch_end (metrics.csv rewritten atomically). Medians over the epochs after
the first two.

Cost: a few seconds. Reading the result: (Checkpointer - serialize + MetricsFile) / epoch is the
share of an epoch that background writes could save.

    PYTHONPATH=. python bench/records_cost.py
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import overhead  # noqa: E402  (the same recipes and learner as the overhead benchmark)

from dltrain.rundir import RunDir, new_run_dir  # noqa: E402
from dltrain.runner import build  # noqa: E402
from dltrain.train.callbacks import Callback, NonFiniteGuard  # noqa: E402
from dltrain.train.loop import fit  # noqa: E402
from dltrain.train.records import Checkpointer, MetricsFile, checkpoint_state  # noqa: E402


class Timed(Callback):
    """Times `inner.on_epoch_end`; passes every other event through."""

    def __init__(self, inner, times: list[float]):
        self.inner, self.times = inner, times

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def on_epoch_end(self, state, logs) -> None:
        started = time.perf_counter()
        self.inner.on_epoch_end(state, logs)
        self.times.append(time.perf_counter() - started)


class Serialize(Callback):
    def __init__(self, times: list[float]):
        self.times = times

    def on_epoch_end(self, state, logs) -> None:
        started = time.perf_counter()
        torch.save(checkpoint_state(state), io.BytesIO())
        self.times.append(time.perf_counter() - started)


class EpochClock(Callback):
    """Last callback: an epoch from its start to the end of every callback's on_epoch_end."""

    def __init__(self, times: list[float]):
        self.times, self.started = times, 0.0

    def on_epoch_start(self, state) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, state, logs) -> None:
        self.times.append(time.perf_counter() - self.started)


def main() -> None:
    torch.set_num_threads(1)
    for case in overhead.CASES:
        with tempfile.TemporaryDirectory(prefix="dltrain-bench-") as tmp:
            recipe = overhead.recipe_for(case, Path(tmp), 12, False)
            built = build(recipe)
            run = RunDir(new_run_dir(Path(tmp) / "runs", recipe.name))
            run.write_recipe(recipe.to_yaml())
            epoch, checkpoint, serialize, metrics = [], [], [], []
            callbacks = [NonFiniteGuard(), Timed(MetricsFile(run), metrics), Serialize(serialize),
                         Timed(Checkpointer(run, built.monitor, built.mode, built.min_delta), checkpoint),
                         EpochClock(epoch)]
            learner, state = overhead.make_learner(recipe, built, built.model, built.loss_fn, callbacks)
            fit(learner, built.loaders["train"], None, state)
            size = (run.checkpoints / "last.pt").stat().st_size

            def ms(values):
                return 1e3 * statistics.median(values[2:])

            print(f"{case}: epoch {ms(epoch):.1f} ms; Checkpointer.on_epoch_end {ms(checkpoint):.2f} ms "
                  f"(serialization alone {ms(serialize):.2f} ms, checkpoint {size / 1e3:.0f} kB); "
                  f"MetricsFile.on_epoch_end {ms(metrics):.2f} ms")


if __name__ == "__main__":
    main()
