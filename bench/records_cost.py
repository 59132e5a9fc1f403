"""Per-epoch cost of a run's records: what stays on the training thread, and what the
background writer thread takes off it.

Measures, per epoch of bench/overhead.py's dltrain run (diagnostics off, 12 epochs, one thread):
the whole epoch; Checkpointer.on_epoch_end on the training thread (the checkpoint's state
gathered and serialized to bytes, then handed to the writer thread); the serialization alone
(torch.save into memory); MetricsFile.on_epoch_end (metrics.csv rendered and handed over); and
the writer thread's time per epoch (write, fsync, previous.pt rotation, rename, folder fsync:
the disk work that no longer holds up training). Medians over the epochs after the first two.

Cost: a few seconds.

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

from dltrain.rundir.writer import BackgroundWrites, RunDir, new_run_dir  # noqa: E402
from dltrain.builder.objects import build  # noqa: E402
from dltrain.train.events import Callback
from dltrain.features.nonfinite import NonFiniteGuard  # noqa: E402
from dltrain.train.loop import fit  # noqa: E402
from dltrain.features.checkpoints import Checkpointer, checkpoint_state
from dltrain.features.metrics_file import MetricsFile  # noqa: E402


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


class TimedWrites(BackgroundWrites):
    """The run's writer, timing each job on its own thread."""

    def __init__(self, times: list[float]):
        super().__init__()
        self.times = times

    def submit(self, job) -> None:
        def timed():
            started = time.perf_counter()
            job()
            self.times.append(time.perf_counter() - started)
        super().submit(timed)


def main() -> None:
    torch.set_num_threads(1)
    for case in overhead.CASES:
        with tempfile.TemporaryDirectory(prefix="dltrain-bench-") as tmp:
            recipe = overhead.recipe_for(case, Path(tmp), 12, False)
            built = build(recipe)
            run = RunDir(new_run_dir(Path(tmp) / "runs", recipe.name))
            run.write_recipe(recipe.to_yaml())
            epoch, checkpoint, serialize, metrics, writer = [], [], [], [], []
            run.writes = TimedWrites(writer)
            callbacks = [NonFiniteGuard(), Timed(MetricsFile(run), metrics), Serialize(serialize),
                         Timed(Checkpointer(run, built.monitor, built.mode, built.min_delta), checkpoint),
                         EpochClock(epoch)]
            learner, state = overhead.make_learner(recipe, built, built.model, built.loss_fn, callbacks)
            fit(learner, built.loaders["train"], None, state)
            size = (run.checkpoints / "last.pt").stat().st_size

            def ms(values):
                return 1e3 * statistics.median(values[2:])

            per_epoch = statistics.median([a + b for a, b in zip(writer[4::2], writer[5::2])])  # csv + checkpoint
            print(f"{case}: epoch {ms(epoch):.1f} ms; on the training thread: Checkpointer.on_epoch_end "
                  f"{ms(checkpoint):.2f} ms (serialization alone {ms(serialize):.2f} ms, checkpoint "
                  f"{size / 1e3:.0f} kB), MetricsFile.on_epoch_end {ms(metrics):.2f} ms; "
                  f"on the writer thread: {1e3 * per_epoch:.2f} ms")

if __name__ == "__main__":
    main()
