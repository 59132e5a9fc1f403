"""Data-parallel training on torch.distributed, seen from one worker process (a rank).

A worker started by torchrun (or by `dltrain run --nproc N`, runner/launch.py) finds its place in
the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and joins
the process group: gloo on the CPU, nccl on CUDA with one GPU per local rank. The model is wrapped
in DistributedDataParallel; every loader yields the rank's part of each global batch
(data/loader.py); metrics are summed over the ranks (train/metrics.py), so they are the figures
one process would record.

Rank 0 owns the run directory and every recording feature; the other ranks (followers) keep none.
Decisions are rank 0's and are shared at agreement points, after every optimizer step and every
epoch's end (`Ranks.agree`, called by the loop through FitState.agree): a stop signal any rank
received, and a StopTraining one of rank 0's callbacks raised (early stopping, divergence),
which waits for the next agreement point so that every rank leaves the loop at
the same step. The agreement travels on a gloo group of its own, on the CPU: with nccl it would
cost a host sync per step.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dltrain.core.errors import Problem, RecipeError
from dltrain.train.events import Callback, StopTraining

RUN_DIR_ENV = "DLTRAIN_RUN_DIR"  # set by `dltrain run --nproc`: the run directory rank 0 writes into
COMMAND_ENV = "DLTRAIN_LAUNCH_COMMAND"  # set by `dltrain run --nproc`: its command line (JSON), for run.json
TIMEOUT_ENV = "DLTRAIN_DIST_TIMEOUT"  # seconds a collective waits for a rank before the run fails
DEFAULT_TIMEOUT_S = 300


def launched_by_torchrun() -> bool:
    """Does this process run under torchrun (its environment names a rank and a world)?"""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def refuse_under_torchrun(command: str) -> None:
    """`command` runs in one process: under torchrun each of its processes would run it whole."""
    if launched_by_torchrun():
        from dltrain.core.errors import UsageError
        raise UsageError(f"{command} runs in one process, not under torchrun (only `dltrain run` trains on "
                         "several); a data-parallel run's checkpoints resume on one process: dltrain resume RUN")


def collective_timeout() -> dt.timedelta:
    return dt.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))


def uses_cuda(device_name: str) -> bool:
    import torch
    return device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())


@dataclass
class Ranks:
    """This process's place among the ranks of a data-parallel run, and what they share."""

    rank: int
    world: int
    local_rank: int
    backend: str
    hosts: list[str]
    control: Any  # the gloo process group of the agreement points
    run_dir: Path | None = None  # where rank 0 writes, when the launcher chose it (RUN_DIR_ENV)
    held: StopTraining | None = None  # a StopTraining of rank 0's, waiting for the next agreement point
    command: list[str] | None = None  # the launcher's command line (COMMAND_ENV), when it set one
    signals: Any = None  # this process's own StopRequest, set by its signal handlers at any moment

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict:
        """run.json's `distributed` field."""
        return {"world_size": self.world, "backend": self.backend, "hosts": sorted(set(self.hosts)),
                "ranks_per_host": {h: self.hosts.count(h) for h in sorted(set(self.hosts))}}

    # -- building ---------------------------------------------------------------------------------

    def wrap(self, built, learner) -> None:
        """DistributedDataParallel around the learner's model, every loader sharded, metric sums
        reduced over the ranks. DDP's constructor broadcasts rank 0's weights, so every rank starts
        from the same ones."""
        from torch.nn.parallel import DistributedDataParallel

        if built.recipe.data.batch_size < self.world:
            raise RecipeError([Problem("data.batch_size", f"{built.recipe.data.batch_size} is the global batch, "
                                       f"shared by {self.world} processes: expected at least {self.world}")])
        learner.eval_model = learner.model  # evaluation: no DDP forward (no collective per eval batch)
        ids = [self.local_rank] if self.backend == "nccl" else None
        learner.model = DistributedDataParallel(learner.model, device_ids=ids)
        learner.reduce = self.sum
        for name in ("train", "val", "test"):
            if built.loaders.get(name) is not None:
                built.loaders[name].shard(self.rank, self.world)

    def sum(self, tensor):
        """Sum `tensor` over the ranks, in place; returns it."""
        import torch.distributed as dist
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def callbacks(self, callbacks: list) -> list:
        """A rank's callbacks: for rank 0 its features, whose StopTraining waits for the next
        agreement point; for the others none but the one every rank has (RankSync)."""
        own = [HeldStops(cb, self) for cb in callbacks] if self.is_writer else []
        return [RankSync(self), *own]

    # -- agreement points -------------------------------------------------------------------------

    def agreed_stop(self, signals):
        """The StopRequest the loop reads: set only at agreement points, from `signals` (this
        process's own, set whenever a signal arrives) or another rank's. A signal arriving between
        two agreement points must not make one rank checkpoint while the others train on."""
        from dltrain.core.signals import StopRequest
        self.signals = signals
        return StopRequest()

    def hold(self, stop: StopTraining) -> None:
        self.held = self.held or stop  # the first one raised wins, as in events.fire

    def agree(self, state) -> None:
        """Every rank, at the same point: take on a stop signal any rank received, and raise the
        StopTraining rank 0 holds, if any, on every rank."""
        import torch
        import torch.distributed as dist

        request = state.stop_request
        signum = (self.signals.signum or 0) if self.signals is not None else 0
        state.interval_agreed = None
        interval_passed = self.is_writer and state.checkpoint_interval > 0 and state._interval_passed()
        flags = torch.tensor([signum, 1 if self.held is not None else 0, int(interval_passed)], dtype=torch.int64)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.control)
        signum, held, interval_passed = flags.tolist()
        state.interval_agreed = bool(interval_passed)
        if signum and request is not None and request.signum is None:
            request.signum = signum  # another rank was signalled: this one stops at the same step
        if held:
            box = [(str(self.held.status), self.held.reason) if self.held is not None else None]
            dist.broadcast_object_list(box, src=0, group=self.control)
            self.held = None
            raise StopTraining(*box[0])

    def share_weights(self, learner) -> None:
        """Rank 0's weights (and buffers) to every rank: before the test pass, after rank 0's
        early stopping may have put its best weights back."""
        import torch.distributed as dist
        for tensor in learner.module.state_dict().values():
            dist.broadcast(tensor, src=0)

    def close(self) -> None:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()


def join(device_name: str) -> Ranks:
    """Join the process group torchrun's environment describes."""
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    backend = "nccl" if uses_cuda(device_name) else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)  # `cuda` (and `auto`) then means this rank's own GPU
    dist.init_process_group(backend, timeout=collective_timeout())
    control = dist.new_group(backend="gloo", timeout=collective_timeout()) if backend != "gloo" else dist.group.WORLD
    hosts: list[Any] = [None] * world
    dist.all_gather_object(hosts, socket.gethostname(), group=control)
    run_dir = Path(os.environ[RUN_DIR_ENV]) if os.environ.get(RUN_DIR_ENV) else None
    command = json.loads(os.environ[COMMAND_ENV]) if os.environ.get(COMMAND_ENV) else None
    return Ranks(rank, world, local_rank, backend, hosts, control, run_dir=run_dir, command=command)


class RankSync(Callback):
    """Every rank's first callback: before a mid-epoch checkpoint (which rank 0 writes), the epoch's
    running metric sums of all ranks move into rank 0's, so the checkpoint holds the whole epoch so
    far and resumes on any number of processes."""

    def __init__(self, ranks: Ranks):
        self.ranks = ranks

    def on_checkpoint(self, state) -> None:
        if state.progress is not None:
            state.progress.sums.merge_into_first(self.ranks.sum, first=self.ranks.is_writer)


class HeldStops:
    """One of rank 0's callbacks, unchanged but for this: a StopTraining raised in one of its events
    is held (Ranks.hold) until the next agreement point, where every rank raises it. on_fit_end
    and on_run_end come after the loop: nothing is held there."""

    PASSED = ("on_fit_end", "on_run_end")

    def __init__(self, callback, ranks: Ranks):
        self.__dict__["_callback"], self.__dict__["_ranks"] = callback, ranks

    def __getattr__(self, name: str):
        value = getattr(self._callback, name)
        if not name.startswith("on_") or name in self.PASSED:
            return value

        def held(*args):
            try:
                return value(*args)
            except StopTraining as stop:
                self._ranks.hold(stop)
        return held

    def __setattr__(self, name: str, value) -> None:
        setattr(self._callback, name, value)
