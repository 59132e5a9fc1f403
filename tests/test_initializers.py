"""Initializers give the variances the literature states."""

import math

import pytest
import torch

from dltrain.components import INITIALIZERS
from dltrain.recipe.load import validate_document
from conftest import tiny_recipe


def init(name: str, shape=(400, 500), **params) -> torch.Tensor:
    torch.manual_seed(0)
    spec = INITIALIZERS.entry(name).model(name=name, **params)
    return INITIALIZERS.build(spec, torch.zeros(shape))  # `default` leaves it as it was


def assert_std(weight: torch.Tensor, expected: float) -> None:
    # the sample std of n iid draws has relative standard error ~ 1/sqrt(2n); allow 5 of them
    n = weight.numel()
    assert weight.std().item() == pytest.approx(expected, rel=5 / math.sqrt(2 * n))


def test_he_normal_has_variance_2_over_fan_in():
    w = init("he_normal")  # Linear weight (out=400, in=500): fan_in = 500
    assert_std(w, math.sqrt(2 / 500))
    assert w.mean().item() == pytest.approx(0, abs=5 * math.sqrt(2 / 500) / math.sqrt(w.numel()))


def test_he_normal_fan_out_mode_and_leaky_slope():
    assert_std(init("he_normal", mode="fan_out"), math.sqrt(2 / 400))
    assert_std(init("he_normal", negative_slope=0.5), math.sqrt(2 / ((1 + 0.25) * 500)))


def test_he_uniform_bounds_and_variance():
    w = init("he_uniform")
    bound = math.sqrt(6 / 500)
    assert w.abs().max().item() <= bound
    assert_std(w, bound / math.sqrt(3))


def test_xavier_normal_and_alias_glorot():
    assert_std(init("xavier_normal"), math.sqrt(2 / (400 + 500)))
    assert INITIALIZERS.canonical("glorot_uniform") == "xavier_uniform"
    w = init("xavier_uniform")
    assert w.abs().max().item() <= math.sqrt(6 / 900)


def test_lecun_normal_variance_is_1_over_fan_in_and_truncated():
    w = init("lecun_normal")
    assert_std(w, math.sqrt(1 / 500))
    assert w.abs().max().item() <= 2 * math.sqrt(1 / 500) / 0.87962566103423978 + 1e-6


def test_conv_fan_in_counts_the_kernel_area():
    w = init("he_normal", shape=(64, 32, 3, 3))  # fan_in = 32 * 3 * 3
    assert_std(w, math.sqrt(2 / (32 * 9)))


def test_orthogonal_rows_are_orthonormal():
    w = init("orthogonal", shape=(64, 128))
    assert torch.allclose(w @ w.T, torch.eye(64), atol=1e-4)


def test_zeros_constant_normal_uniform():
    assert init("zeros").abs().max().item() == 0
    assert torch.all(init("constant", value=0.3) == 0.3)
    assert_std(init("normal", std=1.0), 1.0)
    u = init("uniform", low=-0.1, high=0.2)
    assert u.min().item() >= -0.1 and u.max().item() <= 0.2


def test_truncated_normal_stays_within_two_std():
    w = init("truncated_normal", std=0.1)
    assert w.abs().max().item() <= 0.2 + 1e-6


def test_model_init_reaches_every_linear_layer_and_biases():
    from dltrain.models import build_model
    recipe = validate_document(tiny_recipe(model={"arch": "mlp", "hidden": [300, 300], "init": "he_normal",
                                                  "bias_init": {"name": "constant", "value": 0.1}}))
    model = build_model(recipe.model, (2,), 2)
    hidden = model.layers[1].linear
    assert_std(hidden.weight.detach(), math.sqrt(2 / 300))
    assert torch.all(hidden.bias == 0.1) and torch.all(model.head.bias == 0.1)


@pytest.mark.parametrize("name", INITIALIZERS.names())
def test_every_initializer_runs_on_a_weight_matrix(name):
    w = init(name, shape=(8, 6))
    assert torch.isfinite(w).all()
