"""What work done at every epoch's end costs a small model's training, on the training thread or
on another thread: the evidence for what dltrain's background writer takes off the training
thread and what it leaves on it.

Measures: the epoch time of a minimal hand-written loop (the digits MLP of bench/overhead.py:
[128, 64], 1,797 samples, batch 64, 29 steps, Adam, one torch thread) when, at each epoch's end,
  nothing            the baseline;
  serialize here     the checkpoint (model, Adam state, RNG state) is serialized to bytes on the
                     training thread (what dltrain does);
  serialize there    its tensors are cloned on the training thread and serialized on another
                     thread;
  3 fsynced files    another thread writes three files as dltrain used to every epoch (last.pt
                     with the previous.pt rotation, best.pt, metrics.csv: each a temp file,
                     fsync, rename, folder fsync);
  1 fsynced + link   another thread writes what dltrain writes now (last.pt fsynced once, best.pt
                     a hard link to it, metrics.csv without fsync);
  no fsync           another thread writes the same files without any fsync.
The variants run interleaved in one process: each round runs a block of 4 epochs of each
variant, in an order shuffled every round, the first epoch of a block untimed (it absorbs the
variant before); 40 rounds. Printed: the median epoch time, its ratio to `nothing`, and the
median over rounds of the ratio to `nothing` in the same round (`paired`).

Cost: about a minute, a few MB of temporary files (deleted).

    PYTHONPATH=. python bench/background_work.py [--rounds 40]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from dltrain.rundir.writer import BackgroundWrites, atomic_write

sys.path.insert(0, str(Path(__file__).parent))
from overhead import hand_epoch  # noqa: E402  (the same minimal loop)


def clone(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64),
                                torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters())

    def payload() -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}

    def serialized() -> memoryview:
        buffer = io.BytesIO()
        torch.save(payload(), buffer)
        return buffer.getbuffer()

    writes = BackgroundWrites()
    folder = Path(tempfile.mkdtemp(prefix="dltrain-bench-"))
    csv_text = "epoch,loss\n" + "".join(f"{i},{1 / (i + 1)!r}\n" for i in range(50))

    def old_files(data) -> None:
        atomic_write(folder / "last.pt", lambda h: h.write(data), binary=True, previous=folder / "previous.pt")
        atomic_write(folder / "best.pt", lambda h: h.write(data), binary=True)
        atomic_write(folder / "metrics.csv", lambda h: h.write(csv_text))

    def new_files(data) -> None:
        atomic_write(folder / "metrics.csv", lambda h: h.write(csv_text), durable=False)
        atomic_write(folder / "last.pt", lambda h: h.write(data), binary=True, previous=folder / "previous.pt",
                     also=folder / "best.pt")

    def no_fsync(data) -> None:
        atomic_write(folder / "metrics.csv", lambda h: h.write(csv_text), durable=False)
        atomic_write(folder / "last.pt", lambda h: h.write(data), binary=True, previous=folder / "previous.pt",
                     durable=False)

    def serialize_there() -> None:
        snapshot = clone(payload())
        writes.submit(lambda: torch.save(snapshot, io.BytesIO()))

    data = bytes(serialized())
    epoch_end = {
        "nothing": lambda: None,
        "serialize here": serialized,
        "serialize there": serialize_there,
        "3 fsynced files": lambda: writes.submit(lambda: old_files(data)),
        "1 fsynced + link": lambda: writes.submit(lambda: new_files(data)),
        "no fsync": lambda: writes.submit(lambda: no_fsync(data)),
    }
    times: dict[str, list[float]] = {name: [] for name in epoch_end}
    hand_epoch(model, optimizer, x, y, 64)  # warm-up
    shuffler = random.Random(0)  # a fresh order each round: no variant always follows the same one
    try:
        for _ in range(args.rounds):
            for name in shuffler.sample(list(epoch_end), len(epoch_end)):
                end = epoch_end[name]
                block = []
                for i in range(4):
                    started = time.perf_counter()
                    hand_epoch(model, optimizer, x, y, 64)
                    end()
                    if i:
                        block.append(time.perf_counter() - started)
                times[name].append(statistics.median(block))
    finally:
        writes.close()
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    base = statistics.median(times["nothing"])
    print(f"digits MLP hand loop, {args.rounds} rounds, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), pid {os.getpid()}")
    print(f"{'at each epoch end':<18} {'epoch ms':>9} {'vs nothing':>11} {'paired':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        paired = statistics.median(v / n for v, n in zip(values, times["nothing"]))  # same round
        print(f"{name:<18} {1e3 * median:>9.2f} {median / base:>10.3f}x {paired:>7.3f}x")


if __name__ == "__main__":
    main()
