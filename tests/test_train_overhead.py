"""The loop's cheap bookkeeping changes nothing: same arithmetic as a plain PyTorch loop, exact
metric sums that a mid-epoch checkpoint carries unchanged, and every batch loss logged once."""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from dltrain.components.schedules import LRSchedule
from dltrain.data.loader import ArrayLoader
from dltrain.train.events import Callback, FitState
from dltrain.train.loop import Learner
from dltrain.train.metrics import MetricSums


def _data(n=203, features=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


def _model(features=6, classes=3):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(features, 16), torch.nn.ReLU(), torch.nn.Linear(16, classes))


def _classification_sums(logits, y, chunk=30):
    sums = MetricSums("classification", torch.device("cpu"))
    for start in range(0, len(y), chunk):
        out, target = logits[start:start + chunk], y[start:start + chunk]
        sums.update(torch.nn.functional.cross_entropy(out, target), out, target)
    return sums


def _regression_sums(output, target, chunk=30):
    sums = MetricSums("regression", torch.device("cpu"))
    for start in range(0, len(target), chunk):
        out, t = output[start:start + chunk], target[start:start + chunk]
        sums.update(torch.nn.functional.mse_loss(out, t), out, t)
    return sums


def test_metric_sums_equal_the_metrics_of_the_whole_data():
    x, y = _data(n=100)
    logits = torch.randn(100, 3)
    result = _classification_sums(logits, y).compute()
    assert result["accuracy"] == (logits.argmax(1) == y).double().mean().item()
    assert result["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-6)

    target = torch.randn(100, 2)
    output = target + torch.randn(100, 2)
    result = _regression_sums(output, target).compute()
    err = (output - target).double()
    assert result["mae"] == pytest.approx(err.abs().mean().item(), rel=1e-6)
    assert result["rmse"] == pytest.approx(err.pow(2).mean().sqrt().item(), rel=1e-6)
    assert MetricSums("regression", torch.device("cpu")).compute() == {}


def test_metric_sums_loss_is_the_float64_sum_of_loss_times_batch_size_bit_for_bit():
    x, y = _data(n=100)
    logits = torch.randn(100, 3)
    total = 0.0
    for start in range(0, 100, 30):
        out, target = logits[start:start + 30], y[start:start + 30]
        total += torch.nn.functional.cross_entropy(out, target).double().item() * target.shape[0]
    assert _classification_sums(logits, y).compute()["loss"] == total / 100


def test_metric_sums_survive_a_checkpoint_round_trip_and_keep_adding_identically(tmp_path):
    """What EpochProgress saves mid-epoch: the restored sums continue exactly as the live ones."""
    x, y = _data(n=120)
    logits = torch.randn(120, 3)
    target = torch.randn(120, 2)
    output = target + torch.randn(120, 2)
    for task, make, a, b in [("classification", _classification_sums, logits, y),
                             ("regression", _regression_sums, output, target)]:
        live = make(a[:60], b[:60])
        torch.save(live.state_dict(), tmp_path / "sums.pt")
        restored = MetricSums(task, torch.device("cpu"))
        restored.load_state_dict(torch.load(tmp_path / "sums.pt"))
        rest = make(a[60:], b[60:]).state_dict()  # its classification counts folded in
        for sums in (live, restored):
            sums.count += rest["count"]
            sums.loss_sum += rest["loss_sum"]
            sums.extra += rest["extra"]
        assert restored.compute() == live.compute()
        assert restored.extra.dtype == live.extra.dtype


@pytest.mark.parametrize("save_after", [0, 1, 7, 16, 17, 33])
def test_accuracy_counted_in_groups_of_batches_is_the_same_count_wherever_a_checkpoint_cuts_the_groups(save_after):
    """Classification outputs are counted FOLD_EVERY batches at a time; a mid-epoch checkpoint
    counts those waiting. The count is an integer, so it is exact wherever the cut falls."""
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 5, generator=g), torch.randint(0, 5, (8,), generator=g)) for _ in range(40)]
    expected = sum(int((out.argmax(1) == y).sum()) for out, y in batches)
    sums = MetricSums("classification", torch.device("cpu"))
    for i, (out, y) in enumerate(batches):
        if i == save_after:
            saved = sums.state_dict()
            sums = MetricSums("classification", torch.device("cpu"))
            sums.load_state_dict(saved)
        sums.update(torch.nn.functional.cross_entropy(out, y), out, y)
    assert sums.compute()["accuracy"] == expected / (40 * 8)
    assert not sums.outputs  # compute() counted every batch that waited


def test_metric_sums_read_the_packed_tensor_of_earlier_mid_epoch_checkpoints():
    # the earlier layout: float64 [loss*n, n, correct] (classification), [loss*n, n, |err|, err^2]
    sums = MetricSums("classification", torch.device("cpu"))
    sums.load_state_dict(torch.tensor([12.5, 50.0, 40.0], dtype=torch.float64))
    assert sums.compute() == {"loss": 0.25, "accuracy": 0.8}
    sums = MetricSums("regression", torch.device("cpu"))
    sums.load_state_dict(torch.tensor([5.0, 10.0, 3.0, 40.0], dtype=torch.float64))
    assert sums.compute() == {"loss": 0.5, "mae": 0.3, "rmse": 2.0}


class LogRecorder(Callback):
    def __init__(self):
        self.batches: list[tuple[int, float]] = []

    def on_log(self, state, losses):
        self.batches += losses


@pytest.mark.parametrize("accumulation", [1, 2])
def test_train_epoch_takes_bit_identical_steps_to_a_plain_pytorch_loop(accumulation):
    x, y = _data()
    model = _model()
    plain = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, foreach=True)
    schedule = LRSchedule(optimizer, lambda e: 1.0, warmup_epochs=0, steps_per_epoch=1)
    learner = Learner(model, torch.nn.CrossEntropyLoss(), optimizer, schedule, task="classification",
                      grad_accumulation=accumulation, log_every=3)
    recorder = LogRecorder()
    state = FitState(learner=learner, epochs=1, callbacks=[recorder])
    loader = ArrayLoader(x, y, 32, shuffle=True, generator=torch.Generator().manual_seed(5))
    logs = learner.train_epoch(loader, state)

    plain_opt = torch.optim.Adam(plain.parameters(), lr=1e-2, foreach=True)
    same_order = ArrayLoader(x, y, 32, shuffle=True, generator=torch.Generator().manual_seed(5))
    losses, steps, step = [], [], 0
    batches = list(same_order)
    for i, (xb, yb) in enumerate(batches):
        loss = torch.nn.functional.cross_entropy(plain(xb), yb)
        (loss / accumulation if accumulation > 1 else loss).backward()
        losses.append(loss.item())
        steps.append(step + 1)
        if (i + 1) % accumulation == 0 or i == len(batches) - 1:
            plain_opt.step()
            plain_opt.zero_grad(set_to_none=True)
            step += 1

    for ours, theirs in zip(model.parameters(), plain.parameters()):
        assert torch.equal(ours, theirs)
    assert state.step == step
    assert recorder.batches == list(zip(steps, losses))  # every batch once, in order, exact
    total = 0.0
    for loss, (xb, _) in zip(losses, batches):
        total += loss * xb.shape[0]
    assert logs["loss"] == total / x.shape[0]  # the float64 sum of loss * n, bit for bit
    assert math.isfinite(logs["grad_norm"])


def test_losses_not_yet_logged_cross_a_mid_epoch_checkpoint_and_are_logged_once(tmp_path):
    """A checkpoint between two log points carries the pending batch losses: the resumed epoch
    logs them at its next log point, exactly as the uninterrupted one did."""
    from dltrain.train.position import EpochProgress

    x, y = _data()
    loader = ArrayLoader(x, y, 32, shuffle=True, generator=torch.Generator().manual_seed(5))

    def learner_and_state(recorder):
        model = _model()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        schedule = LRSchedule(optimizer, lambda e: 1.0, warmup_epochs=0, steps_per_epoch=1)
        learner = Learner(model, torch.nn.CrossEntropyLoss(), optimizer, schedule, task="classification",
                          log_every=3, generator=loader.generator)
        return learner, FitState(learner=learner, epochs=1, callbacks=[recorder])

    whole = LogRecorder()
    learner, state = learner_and_state(whole)
    loader.generator.manual_seed(5)
    whole_logs = learner.train_epoch(loader, state)

    class SaveAtStep(Callback):  # checkpoint after step 4: batch 4's loss is pending (log points 3, 6)
        def on_checkpoint(self, state):
            torch.save({"learner": state.learner.state_dict(), "progress": state.progress.state_dict(),
                        "step": state.step}, tmp_path / "mid.pt")
            raise StopTraining("interrupted", "test")

    from dltrain.train.events import StopTraining
    first = LogRecorder()
    learner, state = learner_and_state(first)
    state.callbacks.append(SaveAtStep())
    state.checkpoint_every_steps = 4
    loader.generator.manual_seed(5)
    with pytest.raises(StopTraining):
        learner.train_epoch(loader, state)
    saved = torch.load(tmp_path / "mid.pt", weights_only=False)
    assert len(saved["progress"]["pending"]) == 1

    second = LogRecorder()
    learner, state = learner_and_state(second)
    learner.load_state_dict(saved["learner"])
    state.step = saved["step"]
    state.progress = EpochProgress.from_state(saved["progress"], learner)
    logs = learner.train_epoch(loader, state)
    assert first.batches + second.batches == whole.batches
    assert {k: v for k, v in logs.items() if k != "grad_norm"} == {k: v for k, v in whole_logs.items() if k != "grad_norm"}
    assert logs["grad_norm"] == whole_logs["grad_norm"]


class EndRecorder(Callback):
    def __init__(self):
        self.ended = False

    def on_fit_end(self, state):
        self.ended = True


class FailsAtEnd(Callback):
    def on_fit_end(self, state):
        raise OSError("the disk is full")


def test_every_callback_ends_even_if_an_earlier_one_fails_and_the_first_failure_is_raised():
    from dltrain.train.loop import fit

    x, y = _data()
    model = _model()
    optimizer = torch.optim.Adam(model.parameters())
    schedule = LRSchedule(optimizer, lambda e: 1.0, warmup_epochs=0, steps_per_epoch=1)
    learner = Learner(model, torch.nn.CrossEntropyLoss(), optimizer, schedule, task="classification")
    later = EndRecorder()
    state = FitState(learner=learner, epochs=1, callbacks=[FailsAtEnd(), later])
    with pytest.raises(OSError, match="the disk is full"):
        fit(learner, ArrayLoader(x, y, 32, shuffle=False), None, state)
    assert later.ended


def _scalars(folder, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(folder))
    events.Reload()
    return events.Scalars(tag)


def test_tensorboard_batch_losses_are_every_log_point_with_the_time_it_was_logged(tmp_path):
    from dltrain.rundir.writer import RunDir
    from dltrain.train.loop import fit
    from dltrain.features.tensorboard import TensorBoard

    x, y = _data()
    model = _model()
    optimizer = torch.optim.Adam(model.parameters())
    schedule = LRSchedule(optimizer, lambda e: 1.0, warmup_epochs=0, steps_per_epoch=1)
    learner = Learner(model, torch.nn.CrossEntropyLoss(), optimizer, schedule, task="classification", log_every=3)
    recorder = LogRecorder()
    logged_at = []

    class Clock(Callback):
        def on_log(self, state, losses):
            logged_at.append(__import__("time").time())

    board = TensorBoard(RunDir(tmp_path / "run"))
    state = FitState(learner=learner, epochs=2, callbacks=[recorder, Clock(), board])
    fit(learner, ArrayLoader(x, y, 32, shuffle=True, generator=torch.Generator().manual_seed(1)), None, state)

    points = _scalars(tmp_path / "run" / "train", "Curves/batch_loss")
    # 7 batches per epoch, a log point every 3 steps and at each epoch's end: steps 3, 6, 7, 9, 12, 14
    assert [p.step for p in points] == [3, 6, 7, 9, 12, 14]
    batches = recorder.batches
    expected, start = [], 0
    for step in [3, 6, 7, 9, 12, 14]:
        end = next(i for i, (s, _) in enumerate(batches) if s == step) + 1
        chunk = [v for _, v in batches[start:end]]
        expected.append(sum(chunk) / len(chunk))
        start = end
    assert [p.value for p in points] == pytest.approx(expected, rel=1e-6)  # stored as float32
    assert [p.wall_time for p in points] == pytest.approx(logged_at, abs=1e-3)
    assert len(_scalars(tmp_path / "run" / "train", "Curves/loss")) == 2


def test_tensorboard_hands_batch_losses_over_at_once_when_a_burst_is_due(tmp_path):
    from dltrain.rundir.writer import RunDir
    from dltrain.features.tensorboard import TensorBoard

    board = TensorBoard(RunDir(tmp_path / "run"))
    board.BURST_SECONDS = 0.0  # long epochs: points reach the writer while the epoch runs
    board.on_log(None, [(1, 0.5), (2, 0.7)])
    assert board.batch_points == []
    board.on_log(None, [(3, 0.1)])
    board.BURST_SECONDS = 3600.0
    board.on_log(None, [(4, 0.3)])
    assert [step for step, _, _ in board.batch_points] == [4]
    board.on_checkpoint(None)  # a checkpoint hands over what precedes it
    assert board.batch_points == []
    board.on_fit_end(None)
    points = [(p.step, p.value) for p in _scalars(tmp_path / "run" / "train", "Curves/batch_loss")]
    assert points == [(2, pytest.approx(0.6)), (3, pytest.approx(0.1)), (4, pytest.approx(0.3))]


def test_tensorboard_waits_for_its_writer_at_most_once_per_flush_interval_and_at_the_end(tmp_path, monkeypatch):
    """A flush waits for TensorBoard's writer thread: once every FLUSH_SECONDS (TensorBoard rereads
    every 5 s), not every epoch, and the epoch scalars reach the writer in bursts, at those flushes;
    the run's end flushes and closes, so every event is in the files."""
    from torch.utils.tensorboard import SummaryWriter

    from dltrain.rundir.writer import RunDir
    from dltrain.train.events import FitState
    from dltrain.features.tensorboard import TensorBoard

    board = TensorBoard(RunDir(tmp_path / "run"))
    state = FitState(learner=None, epochs=5, callbacks=[board])
    logs = {"train_loss": 0.5, "val_loss": 0.6, "lr": 0.1}
    flushes, real = [], SummaryWriter.flush
    monkeypatch.setattr(SummaryWriter, "flush", lambda writer: (flushes.append(state.epoch), real(writer))[1])
    for epoch in range(1, 5):
        board.FLUSH_SECONDS = 0.0 if epoch == 3 else 3600.0  # only the third epoch finds a flush due
        state.epoch = epoch
        board.on_epoch_end(state, logs)
        if epoch < 3:
            assert board.writers == {}  # nothing handed to TensorBoard's writer thread yet
    assert flushes == [3, 3]  # train/ and validation/
    assert len(board.epoch_points) == 3  # epoch 4's, until the end
    board.on_fit_end(state)
    assert [p.step for p in _scalars(tmp_path / "run" / "validation", "Curves/loss")] == [1, 2, 3, 4]


def test_overhead_benchmark_runs_and_prints_every_contender():
    result = subprocess.run([sys.executable, "bench/overhead.py", "--case", "digits", "--rounds", "2", "--warmup", "0"],
                            cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": ""}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("hand", "dataloader", "loop only", "loop+logging", "run, diag off", "run"):
        assert f"\n{name} " in result.stdout


def test_records_cost_benchmark_runs_and_prints_both_cases():
    result = subprocess.run([sys.executable, "bench/records_cost.py"], cwd=REPO,
                            env={"PYTHONPATH": str(REPO), "PATH": ""}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for case in ("synthetic", "digits"):
        assert f"{case}: epoch " in result.stdout and "Checkpointer.on_epoch_end" in result.stdout


def test_background_work_benchmark_runs_and_prints_every_variant():
    result = subprocess.run([sys.executable, "bench/background_work.py", "--rounds", "1"],
                            cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": ""}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("nothing", "serialize here", "serialize there", "3 fsynced files", "1 fsynced + link", "no fsync"):
        assert f"\n{name} " in result.stdout
