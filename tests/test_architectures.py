"""Architectures: output shapes, parameter counts worked out by hand, initializers on every layer
type, and architectures that do not fit the data rejected before anything runs."""

from __future__ import annotations

import math
import sys
import textwrap

import pytest
import torch

from conftest import run_dirs, tiny_recipe, write_recipe
from dltrain.models import ARCHITECTURES, build_model


def make(input_shape, outputs=3, **params):
    spec = ARCHITECTURES.entry(params["arch"]).model(**params)
    return build_model(spec, input_shape, outputs)


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_cnn_output_shape_and_parameter_count():
    model = make((1, 8, 8), 3, arch="cnn", channels=[4, 6], kernel_size=3, hidden=[10])
    assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 3)
    conv1 = 1 * 4 * 9 + 4
    conv2 = 4 * 6 * 9 + 6
    dense = (6 * 2 * 2) * 10 + 10  # two 2x2 max-pools: 8x8 -> 2x2
    head = 10 * 3 + 3
    assert count(model) == conv1 + conv2 + dense + head


def test_cnn_without_pooling_keeps_the_map_size_and_norm_adds_gains():
    model = make((3, 5, 5), 2, arch="cnn", channels=[2], pool="none", hidden=[], norm="batch")
    assert count(model) == (3 * 2 * 9 + 2) + 2 * 2 + (2 * 5 * 5) * 2 + 2


def test_cnn_that_pools_below_one_pixel_is_a_recipe_error():
    from dltrain.core.errors import RecipeError
    with pytest.raises(RecipeError, match="model.channels.*below 1x1"):
        make((1, 8, 8), arch="cnn", channels=[4, 4, 4, 4])


def test_resnet_depth_counts_convolutions_and_handles_28_and_32_pixels():
    for shape in [(1, 28, 28), (3, 32, 32)]:
        model = make(shape, 10, arch="resnet", depth=8, width=4)
        assert model(torch.zeros(2, *shape)).shape == (2, 10)
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
        assert len(convs) + 1 == 8  # depth = 3x3 convolutions + the head
    deeper = make((1, 28, 28), 10, arch="resnet", depth=14, width=4)
    assert count(deeper) > count(model)


def test_resnet_depth_that_does_not_fit_the_stages_is_rejected():
    with pytest.raises(ValueError, match="depth 9 does not fit 3 stages.*8, 14, 20"):
        ARCHITECTURES.entry("resnet").model(arch="resnet", depth=9)


@pytest.mark.parametrize("kind,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_recurrent_parameter_counts(kind, gates):
    features, hidden = 2, 8
    model = make((7, features), 1, arch=kind, hidden_size=hidden, layers=2)
    per_layer = lambda fan_in: gates * (hidden * fan_in + hidden * hidden + 2 * hidden)  # noqa: E731
    assert count(model) == per_layer(features) + per_layer(hidden) + hidden + 1


def test_bidirectional_doubles_the_width_and_last_output_reads_both_directions():
    model = make((7, 2), 4, arch="gru", hidden_size=8, layers=2, bidirectional=True)
    per_direction = lambda fan_in: 3 * (8 * fan_in + 64 + 16)  # noqa: E731
    assert count(model) == 2 * per_direction(2) + 2 * per_direction(16) + 16 * 4 + 4
    assert model(torch.zeros(3, 7, 2)).shape == (3, 4)
    # the backward half of the summary is read at step 0: changing only the first step changes it
    x = torch.randn(1, 7, 2)
    y = x.clone()
    y[0, 0] += 1.0
    model.eval()
    layer = model.layers[-1]
    out_x, _ = layer(model.layers[0](x)[0])
    out_y, _ = layer(model.layers[0](y)[0])
    assert not torch.allclose(out_x[0, 0, 8:], out_y[0, 0, 8:])


def test_sequence_output_gives_one_prediction_per_step():
    model = make((9, 1), 1, arch="lstm", hidden_size=4, output="sequence")
    assert model(torch.zeros(2, 9, 1)).shape == (2, 9, 1)


def test_residual_stack_adds_each_layers_input():
    torch.manual_seed(0)
    model = make((5, 3), 1, arch="rnn", hidden_size=4, layers=2, residual=True)
    x = torch.randn(2, 5, 3)
    first, _ = model.layers[0](x)
    second, _ = model.layers[1](first)
    expected = model.head((second + first)[:, -1])
    assert torch.allclose(model(x), expected)


def test_recurrent_keys_that_need_stacked_layers_are_rejected():
    with pytest.raises(ValueError, match="dropout acts between stacked layers"):
        ARCHITECTURES.entry("lstm").model(arch="lstm", dropout=0.2)
    with pytest.raises(ValueError, match="residual connects stacked layers"):
        ARCHITECTURES.entry("gru").model(arch="gru", residual=True)


# ------------------------------------------------------------------ initializers on every layer type


def test_he_normal_on_conv_uses_in_channels_times_kernel_area_as_fan_in():
    torch.manual_seed(0)
    model = make((64, 6, 6), 2, arch="cnn", channels=[64, 128], pool="none", hidden=[], init="he_normal")
    weight = model.features[2].weight  # second conv: (128, 64, 3, 3), fan_in 64*9 = 576
    assert weight.shape == (128, 64, 3, 3)
    assert weight.var().item() == pytest.approx(2 / 576, rel=0.05)
    assert torch.all(model.features[2].bias == 0)


def test_orthogonal_recurrent_init_makes_every_gate_block_orthogonal():
    hidden = 16
    model = make((5, 3), 1, arch="lstm", hidden_size=hidden, recurrent_init="orthogonal")
    w_hh = model.layers[0].weight_hh_l0.detach()  # (4H, H): gates i, f, g, o stacked
    for g in range(4):
        block = w_hh[g * hidden:(g + 1) * hidden]
        assert torch.allclose(block @ block.T, torch.eye(hidden), atol=1e-5)


def test_xavier_on_recurrent_input_weights_is_per_gate():
    torch.manual_seed(0)
    features, hidden = 32, 32
    model = make((5, features), 1, arch="gru", hidden_size=hidden, init="xavier_uniform")
    w_ih = model.layers[0].weight_ih_l0.detach()  # (3H, F)
    per_gate = math.sqrt(6 / (features + hidden))
    whole = math.sqrt(6 / (features + 3 * hidden))  # what one init over the stacked matrix would give
    for g in range(3):
        block = w_ih[g * hidden:(g + 1) * hidden]
        assert whole < block.abs().max().item() <= per_gate


def test_lstm_forget_gate_bias_starts_at_forget_bias():
    hidden = 6
    model = make((5, 2), 1, arch="lstm", hidden_size=hidden, forget_bias=1.0, bias_init="zeros")
    layer = model.layers[0]
    assert torch.all(layer.bias_ih_l0[hidden:2 * hidden] == 1.0)
    assert torch.all(layer.bias_hh_l0[hidden:2 * hidden] == 0.0)
    assert torch.all(layer.bias_ih_l0[:hidden] == 0.0)


# ------------------------------------------------------------------ torchvision and custom


def test_torchvision_model_gets_a_head_sized_to_the_task_and_takes_grayscale():
    model = make((1, 28, 28), 7, arch="torchvision", model="resnet18")
    assert model.net.fc.out_features == 7
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 7)


def test_torchvision_weights_load_from_a_local_file_with_the_head_resized(tmp_path):
    import torchvision
    source = torchvision.models.get_model("resnet18", weights=None, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    model = make((3, 32, 32), 5, arch="torchvision", model="resnet18", weights=str(tmp_path / "resnet18.pth"))
    assert torch.equal(model.net.conv1.weight, source.conv1.weight)
    assert torch.equal(model.net.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert model.net.fc.weight.shape == (5, 512)


def test_unknown_torchvision_model_suggests_a_close_name():
    with pytest.raises(ValueError, match="did you mean `resnet18`"):
        ARCHITECTURES.entry("torchvision").model(arch="torchvision", model="resnet19")


CUSTOM_MODULE = """
import torch

class Tiny(torch.nn.Module):
    def __init__(self, input_shape, outputs, width=4):
        super().__init__()
        self.body = torch.nn.Linear(input_shape[0], width)
        self.out = torch.nn.Linear(width, outputs)

    def forward(self, x):
        return self.out(torch.relu(self.body(x)))
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "usermodels.py").write_text(textwrap.dedent(CUSTOM_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "usermodels"
    sys.modules.pop("usermodels", None)


def test_custom_class_gets_input_shape_outputs_and_kwargs(user_module):
    model = make((2,), 3, arch="custom", target=f"{user_module}:Tiny", kwargs={"width": 6})
    assert model.body.out_features == 6 and model.out.out_features == 3


def test_custom_target_errors_name_the_problem(user_module):
    spec = ARCHITECTURES.entry("custom").model
    with pytest.raises(ValueError, match="has no `Tiney`; did you mean `Tiny`"):
        spec(arch="custom", target=f"{user_module}:Tiney")
    with pytest.raises(ValueError, match="kwargs do not fit.*depth"):
        spec(arch="custom", target=f"{user_module}:Tiny", kwargs={"depth": 3})
    with pytest.raises(ValueError, match="expected package.module:Class"):
        spec(arch="custom", target="usermodels.Tiny")


def test_custom_model_trains_end_to_end(cli, tmp_path, user_module):
    recipe = write_recipe(tmp_path / "custom.yaml",
                          tiny_recipe(model={"arch": "custom", "target": f"{user_module}:Tiny"}, train={"epochs": 1}))
    result = cli("run", recipe)
    assert result.code == 0, result.err


# ------------------------------------------------------------------ architectures that do not fit the data


@pytest.mark.parametrize("data,model,message", [
    ({"name": "digits"}, {"arch": "lstm"}, "`lstm` takes sequence (time, features) inputs, but `digits` gives flat"),
    ({"name": "adding", "n_samples": 50, "seq_len": 5}, {"arch": "cnn"}, "`cnn` takes image (channels, height, width) "
                                                                         "inputs, but `adding` gives sequence"),
    ({"name": "digits", "as_images": False}, {"arch": "cnn"}, "unless data.as_images is false"),
    ({"name": "adding", "n_samples": 50, "seq_len": 5}, {"arch": "gru", "output": "sequence"},
     "output: sequence predicts one value per time step"),
])
def test_architecture_that_does_not_fit_the_data_is_a_recipe_error(cli, tmp_path, data, model, message):
    recipe = write_recipe(tmp_path / "bad.yaml", tiny_recipe(data=data, model=model))
    result = cli("run", recipe)
    assert result.code == 2
    assert "model." in result.err and message in result.err
    assert "Traceback" not in result.err
    assert run_dirs(tmp_path / "runs") == []


@pytest.mark.parametrize("arch, cell", [("rnn", "RNN"), ("lstm", "LSTM"), ("gru", "GRU")])
def test_init_default_is_pytorchs_own_init_for_every_recurrent_parameter(arch, cell):
    # the recurrent layers are built first, in order: the same seed must give torch's own modules bit for bit
    features, hidden = 3, 8
    torch.manual_seed(0)
    model = make((5, features), 1, arch=arch, hidden_size=hidden, layers=2, init="default")
    torch.manual_seed(0)
    reference = [getattr(torch.nn, cell)(features, hidden, batch_first=True),
                 getattr(torch.nn, cell)(hidden, hidden, batch_first=True)]
    for ours, theirs in zip(model.layers, reference):
        mine = dict(ours.named_parameters())
        assert mine.keys() == dict(theirs.named_parameters()).keys()
        for name, param in theirs.named_parameters():
            assert torch.equal(mine[name], param), name
    bound = 1 / math.sqrt(hidden)  # torch's reset_parameters: uniform(-1/sqrt(h), 1/sqrt(h)), biases too
    assert all(p.abs().max() <= bound for p in model.layers.parameters())


def test_init_default_beside_a_keras_style_key_is_an_error_naming_it():
    with pytest.raises(ValueError, match="`init: default` leaves every parameter .* `recurrent_init`"):
        ARCHITECTURES.entry("lstm").model(arch="lstm", init="default", recurrent_init="orthogonal")
    with pytest.raises(ValueError, match="`forget_bias` has nothing to change"):
        ARCHITECTURES.entry("lstm").model(arch="lstm", init="default", forget_bias=1.0)
    spelled_out = ARCHITECTURES.entry("lstm").model(arch="lstm", init="default", recurrent_init="default",
                                                    bias_init="default", forget_bias=None)
    assert spelled_out.init.name == "default"
