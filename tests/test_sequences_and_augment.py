"""Sequence datasets (adding, sine) and training-batch augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import run_dirs, tiny_recipe, write_recipe
from dltrain.data import DATASETS, prepare
from dltrain.data.augment import AUGMENTATIONS, build_augment


def data_spec(**params):
    return DATASETS.entry(params["name"]).model(**params)


def test_adding_target_is_the_sum_of_the_two_marked_values():
    arrays = DATASETS.build(data_spec(name="adding", n_samples=200, seq_len=12), 0)
    assert arrays.x.shape == (200, 12, 2) and arrays.y.shape == (200, 1) and arrays.task == "regression"
    markers = arrays.x[:, :, 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :6].sum(axis=1) == 1)  # one marker in each half
    np.testing.assert_allclose((arrays.x[:, :, 0] * markers).sum(axis=1), arrays.y[:, 0], rtol=1e-6)


def test_sine_target_is_the_next_value_of_the_window():
    nxt = DATASETS.build(data_spec(name="sine", n_samples=50, seq_len=10, noise=0.0), 3)
    seq = DATASETS.build(data_spec(name="sine", n_samples=50, seq_len=10, noise=0.0, target="sequence"), 3)
    assert nxt.x.shape == (50, 10, 1) and nxt.y.shape == (50, 1)
    assert seq.y.shape == (50, 10, 1)
    np.testing.assert_array_equal(seq.y[:, :-1, 0], seq.x[:, 1:, 0])  # the input shifted by one step
    np.testing.assert_array_equal(seq.y[:, -1], nxt.y)


def test_generated_sequences_follow_the_seed_and_split_in_proportion():
    spec = data_spec(name="adding", n_samples=100, seq_len=8, val_fraction=0.2, test_fraction=0.1)
    a, b = prepare(spec, seed=1), prepare(spec, seed=1)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert (len(a.train), len(a.val), len(a.test)) == (70, 20, 10)
    assert a.input_shape == (8, 2) and a.target_dim == 1


def test_sequences_are_standardized_per_feature_not_per_time_step():
    bundle = prepare(data_spec(name="sine", n_samples=400, seq_len=6), seed=0)
    pooled = bundle.train.x.reshape(-1, 1)
    assert abs(pooled.mean()) < 1e-5 and pooled.std() == pytest.approx(1.0, abs=1e-4)
    assert len(bundle.stats["shift"]) == 1  # one feature


def test_lstm_sequence_output_trains_on_per_step_targets(cli, tmp_path):
    recipe = write_recipe(tmp_path / "seq.yaml", tiny_recipe(
        data={"name": "sine", "n_samples": 100, "seq_len": 8, "target": "sequence"},
        model={"arch": "lstm", "hidden_size": 8, "output": "sequence"}, train={"epochs": 1}))
    result = cli("run", recipe)
    assert result.code == 0, result.err


# ------------------------------------------------------------------ augmentation


def augment(specs, shape=(1, 8, 8), seed=0):
    parsed = [AUGMENTATIONS.entry(s["name"]).model(**s) for s in specs]
    return build_augment(parsed, shape, "cpu", seed)


ALL_IMAGE = [{"name": "hflip"}, {"name": "random_crop", "padding": 2}, {"name": "rotation", "degrees": 20},
             {"name": "translate", "pixels": 1}, {"name": "noise", "std": 0.1}]


def test_augmentation_is_seeded_whole_batch_and_keeps_shapes():
    x = torch.randn(16, 3, 8, 8)
    first = augment(ALL_IMAGE, (3, 8, 8), seed=5)(x)
    again = augment(ALL_IMAGE, (3, 8, 8), seed=5)(x)
    other = augment(ALL_IMAGE, (3, 8, 8), seed=6)(x)
    assert first.shape == x.shape
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_augmentation_state_resumes_the_same_random_stream():
    x = torch.randn(4, 1, 8, 8)
    aug = augment([{"name": "noise"}])
    state = aug.state_dict()
    first = aug(x)
    aug.load_state_dict(state)
    assert torch.equal(aug(x), first)


def test_hflip_mirrors_exactly_and_translate_shifts_whole_pixels():
    x = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4)
    assert torch.equal(augment([{"name": "hflip", "p": 1.0}], (1, 4, 4))(x), x.flip(3))
    ones = torch.ones(32, 1, 6, 6)
    shifted = augment([{"name": "translate", "pixels": 2}], (1, 6, 6))(ones)
    # each image is a 6x6 window of the zero-padded image: the ones form one block of >= 4x4
    per_image = shifted.sum(dim=(1, 2, 3))
    assert torch.all(per_image >= 16) and torch.all(per_image <= 36)
    assert set(shifted.unique().tolist()) <= {0.0, 1.0}
    assert (per_image < 36).any()  # with 32 images, some moved


def test_rotation_turns_about_the_centre_within_the_angle():
    x = torch.zeros(64, 1, 9, 9)
    x[:, :, 4, :] = 1.0  # a horizontal bar through the centre
    out = augment([{"name": "rotation", "degrees": 30}], (1, 9, 9))(x)
    assert torch.allclose(out[:, 0, 4, 4], torch.ones(64), atol=1e-5)  # the centre is a fixed point
    assert torch.all(out[:, 0, 0, 4] < 0.05)  # +-30 degrees never brings the bar to the top edge
    assert not torch.allclose(out, x)  # but it does turn


def test_noise_has_the_requested_std():
    x = torch.zeros(64, 1000)
    out = augment([{"name": "noise", "std": 0.3}], (1000,))(x)
    assert out.std().item() == pytest.approx(0.3, rel=0.02)


def test_only_training_batches_are_augmented():
    from dltrain.components.schedules import LRSchedule
    from dltrain.components import SCHEDULES
    from dltrain.data.loader import ArrayLoader
    from dltrain.train.events import FitState
    from dltrain.train.loop import Learner

    seen = []

    def spy(x):
        seen.append(x.shape[0])
        return x + 100.0  # huge shift: any augmented evaluation would show in the loss

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the model stays the same throughout
    schedule = LRSchedule(optimizer, SCHEDULES.build(SCHEDULES.entry("constant").model(name="constant"), 1),
                          warmup_epochs=0, steps_per_epoch=1)
    x, y = torch.randn(20, 4), torch.randint(0, 2, (20,))
    loader = ArrayLoader(x, y, 5, shuffle=False)
    plain = Learner(model, torch.nn.CrossEntropyLoss(), optimizer, schedule, task="classification")
    augmented = Learner(model, torch.nn.CrossEntropyLoss(), optimizer, schedule, task="classification", augment=spy)
    assert augmented.evaluate(loader) == plain.evaluate(loader) and seen == []
    train_logs = augmented.train_epoch(loader, FitState(learner=augmented, epochs=1))
    assert seen == [5, 5, 5, 5]
    assert train_logs["loss"] != pytest.approx(plain.evaluate(loader)["loss"])


@pytest.mark.parametrize("data,augment_list,key,message", [
    ({"name": "adding", "n_samples": 40, "seq_len": 5}, ["hflip"], "data.augment.0", "transforms images"),
    ({"name": "digits", "as_images": True}, [{"name": "random_crop", "size": 6}], "data.augment.0.size",
     "differs from the image size"),
])
def test_augmentation_that_cannot_apply_is_a_recipe_error(cli, tmp_path, data, augment_list, key, message):
    model = {"arch": "lstm"} if data["name"] == "adding" else {"arch": "cnn"}
    recipe = write_recipe(tmp_path / "bad.yaml", tiny_recipe(data={**data, "augment": augment_list}, model=model))
    result = cli("run", recipe)
    assert result.code == 2 and key in result.err and message in result.err
    assert run_dirs(tmp_path / "runs") == []


def test_unknown_augmentation_suggests_a_name(cli, tmp_path):
    recipe = write_recipe(tmp_path / "bad.yaml", tiny_recipe(data={"name": "moons", "augment": ["nosie"]}))
    result = cli("validate", recipe)
    assert result.code == 2 and "data.augment.0" in result.err and "did you mean `noise`" in result.err
