"""The MLP is built as the recipe says: shapes, parameter counts, norm placement, dropout, residuals."""

import pytest
import torch

from dltrain.models import build_model
from dltrain.models.build import summarize
from dltrain.recipe.load import validate_document
from conftest import tiny_recipe


def mlp(input_shape=(6,), outputs=3, **model):
    recipe = validate_document(tiny_recipe(model={"arch": "mlp", **model}))
    torch.manual_seed(0)
    return build_model(recipe.model, input_shape, outputs)


def test_shapes_and_parameter_count():
    model = mlp(hidden=[10, 7])
    assert model(torch.zeros(5, 6)).shape == (5, 3)
    assert sum(p.numel() for p in model.parameters()) == (6 * 10 + 10) + (10 * 7 + 7) + (7 * 3 + 3)
    rows = summarize(model, (6,))
    assert [r["output_shape"] for r in rows if r["type"] == "Linear"] == [["B", 10], ["B", 7], ["B", 3]]


def test_image_shaped_input_is_flattened():
    assert mlp(input_shape=(1, 8, 8), hidden=[4])(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


def test_dropout_is_active_in_training_and_off_in_eval():
    model = mlp(hidden=[256], dropout=0.5)
    x = torch.randn(4, 6)
    model.train()
    assert not torch.equal(model(x), model(x))  # two different masks
    model.eval()
    assert torch.equal(model(x), model(x))


def test_one_dropout_rate_per_layer():
    model = mlp(hidden=[8, 8], dropout=[0.1, 0.0])
    assert model.layers[0].dropout.p == 0.1 and model.layers[1].dropout is None


@pytest.mark.parametrize("position", ["before_activation", "after_activation"])
def test_batch_norm_sits_where_asked(position):
    model = mlp(hidden=[8], norm="batch", norm_position=position, activation="relu")
    block = model.layers[0]
    seen = []
    for name in ("linear", "norm_before", "activation", "norm_after"):
        module = getattr(block, name)
        if module is not None:
            module.register_forward_hook(lambda m, i, o, name=name: seen.append(name))
    model(torch.randn(4, 6))
    expected = ["linear", "norm_before", "activation"] if position == "before_activation" else \
        ["linear", "activation", "norm_after"]
    assert seen == expected
    assert isinstance(block.norm_before or block.norm_after, torch.nn.BatchNorm1d)


def test_layer_norm_normalizes_each_sample():
    model = mlp(hidden=[16], norm="layer", norm_position="after_activation", activation="identity")
    model.eval()
    out = {}
    model.layers[0].norm_after.register_forward_hook(lambda m, i, o: out.setdefault("h", o))
    model(torch.randn(3, 6) * 10)
    assert torch.allclose(out["h"].mean(dim=1), torch.zeros(3), atol=1e-5)


def test_residual_blocks_add_their_input():
    model = mlp(hidden=[6, 6], residual=True, activation="identity", init="zeros")
    x = torch.randn(2, 6)
    # with zero weights and biases each block outputs exactly its input
    with torch.no_grad():
        assert torch.allclose(model.layers(x), x)
    projected = mlp(hidden=[4], residual=True)
    assert projected.layers[0].skip is not None and projected.layers[0].skip.weight.shape == (4, 6)


def test_activation_parameters_reach_the_module():
    model = mlp(hidden=[4], activation={"name": "leaky_relu", "negative_slope": 0.3})
    assert model.layers[0].activation.negative_slope == 0.3


def test_alpha_dropout_for_selu():
    model = mlp(hidden=[4], activation="selu", dropout=0.1, alpha_dropout=True)
    assert isinstance(model.layers[0].dropout, torch.nn.AlphaDropout)
