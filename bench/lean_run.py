"""What a `dltrain run` at its defaults costs over a hand-written loop: per epoch, and to start and end.

Per epoch (`--part epoch`): two contenders, interleaved in one process (bench/overhead.py's
method: blocks of `--block` epochs in a shuffled order each round, the first epoch of a block
untimed so that each contender pays only for its own background work):
  hand  the minimal idiomatic loop: tensors in memory, randperm + slicing, zero_grad, forward,
        cross-entropy, backward, torch.optim.Adam() defaults;
  run   the run `dltrain run` makes, built by its own path (builder.objects.build, build_learner,
        builder.features.build_callbacks, build_fit_state) with every default on: metrics.csv,
        TensorBoard (with its HParams session), diagnostics, checkpoints (every
        train.checkpoint_interval = 60 s and at the end), the non-finite guard.
Both start from the same initial weights on the same normalized data, with no validation split.
The whole comparison is repeated `--repeats` times (each a fresh run); each repeat prints its
paired ratio (the median over rounds of run / hand in the same round), and the last line the
spread of those ratios over the repeats.

Start and end (`--part start`): whole processes, interleaved, `--repeats` times each: a 1-epoch
`python -m dltrain run recipes/quickstart.yaml train.epochs=1` against a 20-line hand script
that imports torch and scikit-learn, loads digits, trains one epoch of the same MLP and
validates. Prints each process's wall time, the difference, and dltrain's exit lag (from its
last line of output to the end of the process).

    PYTHONPATH=. python bench/lean_run.py [--part epoch|start|all] [--case digits|synthetic|all]
                                          [--repeats 3] [--rounds 12] [--warmup 2] [--block 3]
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import BATCH, Baton, BlockClock, hand_epoch, recipe_for, timed_block

from dltrain.builder.features import build_callbacks
from dltrain.builder.objects import build
from dltrain.builder.training import build_fit_state, build_learner
from dltrain.rundir.writer import RunDir, new_run_dir
from dltrain.train.loop import fit

REPO = Path(__file__).resolve().parents[1]


def epoch_ratio(case: str, rounds: int, warmup: int, block: int) -> tuple[float, float, float, int]:
    """One interleaved comparison: (paired ratio, hand median s, run median s, steps per epoch)."""
    clock = time.perf_counter
    with tempfile.TemporaryDirectory(prefix="dltrain-lean-") as tmp:
        folder = Path(tmp)
        recipe = recipe_for(case, folder, (warmup + rounds) * block, diagnostics=True)
        built = build(recipe)
        learner = build_learner(built)
        hand_model = copy.deepcopy(built.model)  # the same initial weights
        hand_opt = torch.optim.Adam(hand_model.parameters())
        loader = built.loaders["train"]
        x, y = loader.x, loader.y
        run = RunDir(new_run_dir(folder / "runs", recipe.name))
        run.write_recipe(recipe.to_yaml())
        times: dict[str, list[list[float]]] = {"hand": [], "run": []}
        baton = Baton()
        callbacks = [*build_callbacks(built, run), BlockClock("run", baton, times["run"], clock, block)]
        state = build_fit_state(built, learner, callbacks)
        thread = baton.start("run", lambda: fit(learner, loader, None, state))
        shuffler = random.Random(0)
        for _ in range(warmup + rounds):
            for name in shuffler.sample(list(times), 2):
                if name == "hand":
                    times["hand"].append(timed_block(lambda: hand_epoch(hand_model, hand_opt, x, y, BATCH), block, clock))
                else:
                    baton.turn("run")
        thread.join()
        if state.stop is None or state.stop.status != "completed":
            raise SystemExit(f"the run did not complete: {state.stop}")
        assert (run.checkpoints / "last.pt").is_file()  # the final checkpoint
        cost = run.info.get("diagnostics_cost", {})
        kept = {name: [statistics.median(b) for b in blocks[warmup:]] for name, blocks in times.items()}
        paired = statistics.median(r / h for r, h in zip(kept["run"], kept["hand"]))
        print(f"  {case}: paired run/hand {paired:.3f}x  (hand {statistics.median(kept['hand']) * 1e3:.2f} ms, "
              f"run {statistics.median(kept['run']) * 1e3:.2f} ms per epoch; diagnostics "
              f"{cost.get('seconds', 0):.3f}s of {cost.get('training_seconds', 0):.1f}s training)", flush=True)
        return paired, statistics.median(kept["hand"]), statistics.median(kept["run"]), len(loader)


HAND_SCRIPT = """
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
torch.manual_seed(0)
d = load_digits()
x, xv, y, yv = train_test_split(d.data, d.target, test_size=0.15, random_state=0, stratify=d.target)
mean, std = x.mean(0), x.std(0) + 1e-8
x, xv = [torch.tensor((a - mean) / std, dtype=torch.float32) for a in (x, xv)]
y, yv = torch.tensor(y), torch.tensor(yv)
model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(),
                            torch.nn.Linear(64, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
perm = torch.randperm(len(x))
for i in range(0, len(x), 64):
    index = perm[i:i + 64]
    optimizer.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x[index]), y[index]).backward()
    optimizer.step()
with torch.no_grad():
    print("val accuracy", (model(xv).argmax(1) == yv).float().mean().item())
"""


def timed_process(command: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, seconds from the last line of output to the process's end)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    last = started
    for _ in proc.stdout:
        last = time.perf_counter()
    code = proc.wait()
    ended = time.perf_counter()
    if code != 0:
        raise SystemExit(f"{command[:4]} exited {code}")
    return ended - started, ended - last


def start_part(repeats: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # what dltrain sets for itself: the same for both
    with tempfile.TemporaryDirectory(prefix="dltrain-lean-") as tmp:
        contenders = {
            "hand": [sys.executable, "-c", HAND_SCRIPT],
            "dltrain": [sys.executable, "-m", "dltrain", "run", "recipes/quickstart.yaml", "train.epochs=1",
                        "log.progress=none", "--runs-dir", tmp],
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
        shuffler = random.Random(0)
        timed_process(contenders["dltrain"], env)  # warm the file cache for both (torch's libraries)
        for _ in range(repeats):
            for name in shuffler.sample(list(contenders), 2):
                results[name].append(timed_process(contenders[name], env))
    hand = [wall for wall, _ in results["hand"]]
    ours = [wall for wall, _ in results["dltrain"]]
    lags = [lag for _, lag in results["dltrain"]]
    print(f"start and end, {repeats} interleaved pairs of whole processes (OMP_NUM_THREADS={env['OMP_NUM_THREADS']}):")
    print(f"  hand script   {' '.join(f'{v:.2f}' for v in hand)} s  (median {statistics.median(hand):.2f})")
    print(f"  dltrain run   {' '.join(f'{v:.2f}' for v in ours)} s  (median {statistics.median(ours):.2f})")
    diffs = [o - h for o, h in zip(ours, hand)]
    print(f"  difference    {' '.join(f'{v:+.2f}' for v in diffs)} s  (median {statistics.median(diffs):+.2f}; "
          f"target <= +0.5)")
    print(f"  exit lag      {' '.join(f'{v:.3f}' for v in lags)} s  (max {max(lags):.3f}; target <= 0.3)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["epoch", "start", "all"], default="all")
    parser.add_argument("--case", choices=["digits", "synthetic", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--block", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.part in ("epoch", "all"):
        for case in ("digits", "synthetic") if args.case == "all" else (args.case,):
            print(f"per epoch, {case}: {args.repeats} repeats of {args.rounds} rounds (+{args.warmup} warm-up) "
                  f"of {args.block}-epoch blocks, torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
            ratios = [epoch_ratio(case, args.rounds, args.warmup, args.block)[0] for _ in range(args.repeats)]
            print(f"  {case}: run/hand per epoch {statistics.median(ratios):.3f}x median, "
                  f"{min(ratios):.3f}-{max(ratios):.3f}x over {args.repeats} repeats (target <= 1.05x)")
    if args.part in ("start", "all"):
        start_part(args.repeats)


if __name__ == "__main__":
    main()
