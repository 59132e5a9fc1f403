"""Diagnostics on networks built to have a known state: the numbers must be the ones the
construction implies, and the verdicts must name the problem."""

import math

import pytest
import torch
from torch import nn

from dltrain.diagnostics.forensics import FlightRecorder, replay
from dltrain.diagnostics.landscape import filter_normalized_direction, landscape, mean_loss
from dltrain.diagnostics.probes import Probe, probe_pass, unroll
from dltrain.diagnostics.verdicts import judge
from dltrain.rundir.writer import RunDir, read_jsonl
from dltrain.train.events import FitState
from dltrain.features.checkpoints import Checkpointer


def batch(n=64, features=4, classes=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)


def record_of(model, x, y):
    return probe_pass(model, nn.CrossEntropyLoss(), x, y, Probe(model)).to_host()


def mlp(*widths, activation=nn.ReLU):
    layers = []
    for fan_in, fan_out in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(fan_in, fan_out), activation()]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


def test_layer_gradient_norms_are_the_autograd_norms():
    torch.manual_seed(0)
    model = mlp(4, 8, 8, 2)
    x, y = batch()
    record = record_of(model, x, y)
    nn.CrossEntropyLoss()(model(x), y).backward()
    for layer, index in zip(record["layers"], (0, 2, 4)):
        module = model[index]
        expected = math.sqrt(module.weight.grad.pow(2).sum() + module.bias.grad.pow(2).sum())
        assert layer["grad_norm"] == pytest.approx(expected, rel=1e-5)
        assert layer["name"] == str(index)


def test_zero_first_layer_weights_give_zero_first_layer_gradient():
    # With zero weights and zero biases every first-layer pre-activation is 0, and torch's ReLU has
    # derivative 0 there: nothing flows back into the first layer.
    torch.manual_seed(0)
    model = mlp(4, 8, 8, 2)
    nn.init.zeros_(model[0].weight)
    nn.init.zeros_(model[0].bias)
    record = record_of(model, *batch())
    assert record["layers"][0]["grad_norm"] == 0.0
    assert record["layers"][1]["grad_norm"] > 0
    (finding,) = [f for f in judge(record) if f.problem == "vanishing gradients"]
    assert "layer 1 (0) gets no gradient at all" in finding.evidence


def test_zero_weights_above_the_first_layer_cut_its_gradient_for_any_activation():
    torch.manual_seed(0)
    model = mlp(4, 8, 8, 2, activation=nn.Tanh)
    nn.init.zeros_(model[2].weight)
    record = record_of(model, *batch())
    assert record["layers"][0]["grad_norm"] == 0.0


def test_relu_layer_with_large_negative_bias_is_all_dead():
    torch.manual_seed(0)
    model = mlp(4, 16, 2)
    nn.init.constant_(model[0].bias, -100.0)
    record = record_of(model, *batch())
    (relu,) = record["activations"]
    assert relu["dead"] == 1.0 and relu["index"] == 1 and relu["kind"] == "relu"
    assert relu["mean"] == 0.0
    findings = [str(f) for f in judge(record)]
    assert any(f.startswith("dead units: 100% of layer 1's ReLUs never fire") for f in findings)
    assert any(f.startswith("vanishing gradients: layer 1 (0) gets no gradient at all") for f in findings)


def test_dead_fraction_counts_units_silent_for_every_sample():
    model = mlp(4, 4, 2)
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor([1.0, -1.0, -1.0, 2.0]))  # units 2 and 3 are off for every input
    record = record_of(model, *batch())
    assert record["activations"][0]["dead"] == 0.5


def test_sigmoid_layer_fed_huge_inputs_is_saturated():
    torch.manual_seed(0)
    model = mlp(4, 16, 2, activation=nn.Sigmoid)
    with torch.no_grad():
        model[0].weight.mul_(1000.0)
    record = record_of(model, *batch())
    (sigmoid,) = record["activations"]
    assert sigmoid["saturated"] > 0.98 and sigmoid["kind"] == "saturating"
    assert any(f.problem == "saturated units" and "within 0.01 of 0 or 1" in f.evidence for f in judge(record))


def test_sigmoid_layer_near_zero_is_not_saturated():
    model = mlp(4, 16, 2, activation=nn.Sigmoid)
    with torch.no_grad():
        model[0].weight.mul_(0.01)
    record = record_of(model, *batch())
    assert record["activations"][0]["saturated"] == 0.0


def deep(activation, init, depth=20, width=64, seed=0):
    torch.manual_seed(seed)
    model = mlp(64, *[width] * depth, 10, activation=activation)
    for module in model:
        if isinstance(module, nn.Linear):
            init(module.weight)
            nn.init.zeros_(module.bias)
    return model


def test_twenty_layer_sigmoid_with_standard_normal_weights_is_called_vanishing():
    model = deep(nn.Sigmoid, lambda w: nn.init.normal_(w, 0.0, 1.0))
    problems = {f.problem for f in judge(record_of(model, *batch(features=64, classes=10)))}
    assert "vanishing gradients" in problems and "healthy" not in problems


def test_relu_mlp_with_he_init_is_called_healthy():
    model = deep(nn.ReLU, lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"), depth=6, width=128)
    findings = judge(record_of(model, *batch(features=64, classes=10)))
    assert [f.problem for f in findings] == ["healthy"]
    assert "gradient norms stay within" in findings[0].evidence


def test_tanh_with_huge_weights_is_called_exploding():
    model = deep(nn.Tanh, lambda w: nn.init.normal_(w, 0.0, 1.0))
    problems = {f.problem for f in judge(record_of(model, *batch(features=64, classes=10)))}
    assert "exploding gradients" in problems


def test_identity_placeholders_are_not_counted_as_activations_but_identity_activations_are():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear, self.activation, self.dropout = nn.Linear(4, 4), nn.Identity(), nn.Identity()
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.dropout(self.activation(self.linear(x))))

    record = record_of(Net(), *batch())
    assert [(a["name"], a["index"]) for a in record["activations"]] == [("activation", 1)]


def test_probe_pass_leaves_rng_batchnorm_statistics_and_gradients_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 2))
    model.eval()
    running = model[1].running_mean.clone()
    rng = torch.get_rng_state()
    probe = Probe(model)
    probe_pass(model, nn.CrossEntropyLoss(), *batch(), probe)
    assert torch.equal(model[1].running_mean, running)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())
    assert not model.training  # mode restored
    assert not model[0]._forward_hooks and not probe.handles  # disarmed: no hooks left behind


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_unrolled_recurrent_layer_reproduces_torch(cls):
    torch.manual_seed(0)
    module = cls(3, 5, num_layers=2, batch_first=True, bidirectional=True)
    x = torch.randn(4, 6, 3)
    expected, _ = module(x)
    got, gates = unroll(module, x)
    assert torch.allclose(got, expected, atol=1e-5)
    assert set(gates) == ({"input", "forget", "cell", "output"} if cls is nn.LSTM else {"reset", "update", "new"})


def test_lstm_with_huge_forget_bias_has_saturated_forget_gates():
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 8, batch_first=True)
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.lstm(x)[0][:, -1])

    model = Net()
    x = torch.randn(16, 5, 3)
    healthy = judge(record_of(model, x, torch.randint(0, 2, (16,))))
    assert [f.problem for f in healthy] == ["healthy"] and "saturated gate values" in healthy[0].evidence
    with torch.no_grad():
        model.lstm.bias_ih_l0[8:16] = 50.0  # gate order i, f, g, o: the forget gate is pinned at 1
    record = record_of(model, x, torch.randint(0, 2, (16,)))
    lstm = record["layers"][0]
    assert lstm["type"] == "LSTM" and lstm["gate_forget"] == 1.0 and lstm["gate_input"] < 0.5
    assert any(f.problem == "saturated gates" and "forget gate" in f.evidence for f in judge(record))


def test_replay_names_the_layer_whose_output_first_overflows():
    """Layer 2's weights are finite but so large that its output overflows: the replay names it."""
    from dltrain.components.schedules import LRSchedule, constant
    from dltrain.train.loop import Learner

    torch.manual_seed(0)
    model = mlp(4, 8, 8, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    learner = Learner(model, nn.CrossEntropyLoss(), optimizer, LRSchedule(optimizer, constant(1), warmup_epochs=0, steps_per_epoch=1),
                      task="classification")
    x, y = batch()
    with torch.no_grad():
        model[2].weight.fill_(3e38)  # finite, but 8 positive inputs times 3e38 overflow float32
    recorder = FlightRecorder()
    recorder.snapshot(learner, 0)
    recorder.batches = [[1, x, y]]
    found = replay(learner, recorder, 1, ["0", "2", "4"])
    assert found["reproduced"]
    assert {k: found["first"][k] for k in ("kind", "module", "layer", "step")} == \
        {"kind": "activation", "module": "2", "layer": 2, "step": 1}


def test_flight_recorder_keeps_the_older_copy_when_weights_are_not_finite():
    from dltrain.components.schedules import LRSchedule, constant
    from dltrain.train.loop import Learner

    model = mlp(4, 8, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    learner = Learner(model, nn.CrossEntropyLoss(), optimizer, LRSchedule(optimizer, constant(1), warmup_epochs=0, steps_per_epoch=1),
                      task="classification")
    recorder = FlightRecorder()
    assert recorder.snapshot(learner, 3)
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    assert not recorder.snapshot(learner, 7)
    assert recorder.step == 3 and all(torch.isfinite(t).all() for t in recorder.saved)


def test_flight_recorder_restores_a_state_that_trains_on_bit_identically():
    from dltrain.components.schedules import LRSchedule, cosine
    from dltrain.train.loop import Learner

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    learner = Learner(model, nn.CrossEntropyLoss(), optimizer,
                      LRSchedule(optimizer, cosine(3), warmup_epochs=0, steps_per_epoch=2), task="classification")
    x, y = batch()

    def steps(n):
        for _ in range(n):
            learner.loss_fn(model(x), y).backward()
            learner.optimizer_step(measure_norm=False)
        return [t.detach().clone() for t in model.state_dict().values()]

    steps(2)  # the optimizer has state (moments, step counts) by now
    recorder = FlightRecorder()
    recorder.snapshot(learner, 2)
    first = steps(3)
    recorder.restore(learner)
    second = steps(3)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_checkpointer_writes_nothing_for_an_epoch_with_a_non_finite_loss(tmp_path):
    run = RunDir(tmp_path)
    model = nn.Linear(2, 2)
    state = FitState(learner=type("L", (), {"state_dict": lambda self: {"model": model.state_dict()}})(), epochs=3)
    Checkpointer(run, "val_loss", "min").on_epoch_end(state, {"train_loss": float("nan"), "val_loss": 1.0})
    assert not (tmp_path / "checkpoints").exists()


def test_filter_normalized_direction_matches_each_filter_norm_and_spares_biases():
    layer = nn.Linear(5, 3)
    d_weight, d_bias = filter_normalized_direction([layer.weight, layer.bias], torch.Generator().manual_seed(0))
    assert torch.allclose(d_weight.norm(dim=1), layer.weight.detach().norm(dim=1), rtol=1e-5)
    assert torch.count_nonzero(d_bias) == 0


def test_landscape_is_seeded_centred_and_leaves_the_weights_alone():
    torch.manual_seed(0)
    model = mlp(4, 8, 2)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = batch()
    loss = nn.CrossEntropyLoss()
    first = landscape(model, loss, x, y, points=5, span=0.5, seed=3)
    again = landscape(model, loss, x, y, points=5, span=0.5, seed=3)
    other = landscape(model, loss, x, y, points=5, span=0.5, seed=4)
    assert first["loss_1d"] == again["loss_1d"] and first["loss_2d"] == again["loss_2d"]
    assert first["loss_1d"] != other["loss_1d"]
    assert first["alphas"][2] == 0.0 and first["loss_1d"][2] == pytest.approx(mean_loss(model, loss, x, y))
    assert first["loss_2d"][2][2] == pytest.approx(first["center_loss"])
    assert len(first["loss_2d"]) == 5 and all(len(row) == 5 for row in first["loss_2d"])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_jsonl_reader_skips_a_line_cut_short(tmp_path):
    run = RunDir(tmp_path)
    run.append_jsonl("d.jsonl", [{"a": 1}, {"a": 2}])
    with open(tmp_path / "d.jsonl", "a") as handle:
        handle.write('{"a": 3, "b"')  # a kill in the middle of a write
    assert read_jsonl(tmp_path / "d.jsonl") == [{"a": 1}, {"a": 2}]


def test_advice_leaves_out_what_the_run_already_does():
    from dltrain.diagnostics.forensics import RunFacts, suggestions
    first = {"kind": "activation", "step": 3}
    tips = suggestions(first, RunFacts(lr=0.1, clip_norm=5.0, init="he_uniform", activation="gelu", norm="batch"))
    assert tips == ["lower the learning rate: optimizer.lr=0.01 (it was 0.1)",
                    "clip harder: `clip.norm` below 5 (the run clipped the gradient norm to 5)"]
    tips = suggestions(first, RunFacts(lr=0.1, init="xavier_uniform", activation="selu", norm="none"))
    assert "start from another initializer: `model.init: lecun_normal` (SELU self-normalizes only from variance " \
           "1/fan_in; the run used `xavier_uniform` with `selu`)" in tips
