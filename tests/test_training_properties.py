"""The training step does what the recipe says: penalties, clipping, accumulation, early stopping."""

import pytest
import torch

from dltrain.components.schedules import LRSchedule
from dltrain.data.loader import ArrayLoader
from dltrain.features.early_stopping import EarlyStopping
from dltrain.train.events import FitState, StopTraining
from dltrain.train.loop import Clip, Learner, Penalty, fit


def make_learner(model, *, lr=0.1, clip=None, penalty=None, accumulation=1, log_every=10, optimizer=None):
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=lr)
    schedule = LRSchedule(optimizer, lambda e: 1.0, warmup_epochs=0, steps_per_epoch=1)
    return Learner(model, torch.nn.MSELoss(), optimizer, schedule, task="regression", penalty=penalty,
                   clip=clip, grad_accumulation=accumulation, log_every=log_every,
                   generator=torch.Generator().manual_seed(0))


def test_l1_penalty_gradient_is_lambda_times_sign():
    torch.manual_seed(0)
    w = torch.randn(5, 4, requires_grad=True)
    Penalty(l1=0.3)([w]).backward()
    assert torch.allclose(w.grad, 0.3 * torch.sign(w.detach()))


def test_l2_penalty_gradient_is_2_lambda_w_and_biases_are_exempt():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    learner = make_learner(model, penalty=Penalty(l2=0.5))
    assert learner.weights == [model.weight]  # the bias (ndim 1) carries no penalty
    learner.penalty(learner.weights).backward()
    assert torch.allclose(model.weight.grad, 2 * 0.5 * model.weight.detach())
    assert model.bias.grad is None


def test_penalty_is_logged_apart_from_the_data_loss():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    with torch.no_grad():
        data_loss = torch.nn.functional.mse_loss(model(x), y).item()
        penalty = 0.1 * model.weight.abs().sum().item()
    learner = make_learner(model, lr=1e-9, penalty=Penalty(l1=0.1))
    logs = learner.train_epoch(ArrayLoader(x, y, 32, shuffle=False), FitState(learner=learner, epochs=1))
    assert logs["loss"] == pytest.approx(data_loss, rel=1e-5)
    assert logs["penalty"] == pytest.approx(penalty, rel=1e-5)


def test_norm_clipping_leaves_the_global_norm_at_the_threshold_and_logs_the_pre_clip_norm():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 10), torch.nn.Linear(10, 1))
    x, y = torch.randn(64, 10) * 100, torch.randn(64, 1) * 100  # big gradients
    seen = {}

    class Spy(torch.optim.SGD):
        def step(self, closure=None):
            grads = [p.grad for group in self.param_groups for p in group["params"]]
            seen["norm"] = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
            return super().step(closure)

    torch.nn.functional.mse_loss(model(x), y).backward()
    raw = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()
    model.zero_grad(set_to_none=True)
    learner = make_learner(model, clip=Clip(norm=1.0), optimizer=Spy(model.parameters(), lr=0.0))
    logs = learner.train_epoch(ArrayLoader(x, y, 64, shuffle=False), FitState(learner=learner, epochs=1))
    assert raw > 10
    assert seen["norm"] == pytest.approx(1.0, rel=1e-4)
    assert logs["grad_norm"] == pytest.approx(raw, rel=1e-4)


def test_value_clipping_bounds_every_gradient_element():
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 1)
    x, y = torch.randn(64, 10) * 100, torch.randn(64, 1) * 100
    seen = {}

    class Spy(torch.optim.SGD):
        def step(self, closure=None):
            seen["max"] = max(p.grad.abs().max().item() for p in model.parameters())
            return super().step(closure)

    learner = make_learner(model, clip=Clip(value=0.5), optimizer=Spy(model.parameters(), lr=0.0))
    logs = learner.train_epoch(ArrayLoader(x, y, 64, shuffle=False), FitState(learner=learner, epochs=1))
    assert seen["max"] == pytest.approx(0.5)
    assert logs["grad_norm"] > 0.5  # the logged norm is the one before clipping


def test_gradient_accumulation_equals_one_big_batch():
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randn(64, 1)
    finals = []
    for batch, accumulation in ((32, 2), (64, 1)):
        torch.manual_seed(1)
        model = torch.nn.Linear(5, 1)
        learner = make_learner(model, lr=0.1, accumulation=accumulation)
        learner.train_epoch(ArrayLoader(x, y, batch, shuffle=False), FitState(learner=learner, epochs=1))
        finals.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(finals[0], finals[1], atol=1e-6)


def run_early_stopping(values, patience, min_delta=0.0, restore_best=True):
    """Feed EarlyStopping a fixed val_loss sequence; the weight is set to the epoch number each epoch."""
    model = torch.nn.Linear(1, 1)
    learner = make_learner(model)
    stopper = EarlyStopping("val_loss", "min", patience, min_delta, restore_best)
    state = FitState(learner=learner, epochs=len(values), callbacks=[stopper])
    for epoch, value in enumerate(values, start=1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))  # weight = epoch number: easy to see which was restored
        state.epoch = epoch
        try:
            stopper.on_epoch_end(state, {"val_loss": value})
        except StopTraining as stop:
            state.stop = stop
            break
    stopper.on_fit_end(state)
    return state, model.weight.item()


def test_early_stopping_stops_after_patience_bad_epochs_and_restores_the_best():
    #        epoch:  1    2    3    4    5    6    7    8
    values = [1.0, 0.8, 0.5, 0.6, 0.55, 0.7, 0.9, 0.4]
    state, weight = run_early_stopping(values, patience=3)
    assert state.epoch == 6  # best at epoch 3, then 3 epochs without improvement
    assert state.stop.status == "early_stopped"
    assert weight == 3.0  # the best epoch's weights are back


def test_min_delta_makes_small_improvements_count_as_none():
    state, _ = run_early_stopping([1.0, 0.99, 0.985, 0.98, 0.5], patience=2, min_delta=0.05)
    assert state.epoch == 3


def test_restore_best_false_keeps_the_last_weights():
    state, weight = run_early_stopping([1.0, 2.0, 3.0], patience=2, restore_best=False)
    assert state.epoch == 3 and weight == 3.0


def test_schedule_warmup_ramps_linearly_then_cosine_reaches_its_floor():
    from dltrain.components.schedules import cosine
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    schedule = LRSchedule(opt, cosine(4, min_factor=0.1), warmup_epochs=1, steps_per_epoch=4)
    lrs = [schedule.lr]
    for _ in range(4 * 5):
        schedule.step_batch()
        lrs.append(schedule.lr)
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # warmup over the first epoch's 4 steps
    assert lrs[4] == pytest.approx(1.0)  # cosine starts at the full lr
    assert lrs[-1] == pytest.approx(0.1)  # ... and ends at min_factor * lr
    assert all(a >= b - 1e-12 for a, b in zip(lrs[4:], lrs[5:]))


def test_step_and_plateau_schedules():
    from dltrain.components.schedules import plateau, step
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    schedule = LRSchedule(opt, step(10, step_size=2, gamma=0.5), warmup_epochs=0, steps_per_epoch=1)
    seen = [schedule.lr]
    for _ in range(5):
        schedule.step_batch()
        seen.append(schedule.lr)
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    opt = torch.optim.SGD([p], lr=1.0)
    schedule = LRSchedule(opt, plateau(10, patience=1, factor=0.5), warmup_epochs=0, steps_per_epoch=1)
    for loss in (1.0, 1.0, 1.0):  # best at epoch 1, then two epochs without improvement (> patience 1)
        schedule.step_epoch({"val_loss": loss})
    assert schedule.lr == 0.5


def test_fit_reports_divergence_with_epoch_and_step():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    y[40] = float("inf")  # the batch holding sample 40 has an infinite loss
    learner = make_learner(model, lr=0.01, log_every=1)
    from dltrain.features.nonfinite import NonFiniteGuard
    state = fit(learner, ArrayLoader(x, y, 16, shuffle=False), None,
                FitState(learner=learner, epochs=3, callbacks=[NonFiniteGuard()]))
    assert state.stop.status == "diverged"
    assert "epoch 1, step 3" in state.stop.reason
