"""Data: seeded disjoint splits, normalization fitted on the training split, classes, limit."""

import numpy as np
import pytest

from dltrain.data import DATASETS, prepare
from dltrain.core.errors import DataError
from dltrain.recipe.load import validate_document
from conftest import run_dirs, tiny_recipe, write_recipe


def spec(**data):
    return validate_document(tiny_recipe(data=data)).data


def rows(split):
    return {tuple(np.round(r, 5)) for r in split.x}


@pytest.mark.parametrize("name", ["digits", "iris", "wine", "breast_cancer", "diabetes", "moons", "circles",
                                  "spirals", "friedman", "houses"])
def test_every_builtin_dataset_loads_offline_with_disjoint_splits(name):
    bundle = prepare(spec(name=name), seed=0)
    total = len(bundle.train) + len(bundle.val) + len(bundle.test)
    assert len(bundle.test) == pytest.approx(0.15 * total, abs=2)
    assert len(bundle.val) == pytest.approx(0.15 * total, abs=2)
    assert bundle.train.x.dtype == np.float32
    expected = "regression" if name in ("diabetes", "friedman", "houses") else "classification"
    assert bundle.task == expected


def test_splits_are_disjoint():
    bundle = prepare(spec(name="friedman"), seed=0)  # continuous features: no two samples coincide
    train, val, test = rows(bundle.train), rows(bundle.val), rows(bundle.test)
    assert len(train) == len(bundle.train)
    assert not train & test and not train & val and not val & test


def test_standardize_is_fitted_on_the_training_split_only():
    bundle = prepare(spec(name="wine"), seed=0)
    assert np.allclose(bundle.train.x.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(bundle.train.x.std(axis=0), 1, atol=1e-4)
    assert not np.allclose(bundle.test.x.mean(axis=0), 0, atol=1e-3)  # test data was not used to fit


def test_minmax_maps_the_training_split_to_unit_range():
    bundle = prepare(spec(name="iris", normalize="minmax"), seed=0)
    assert bundle.train.x.min() == pytest.approx(0) and bundle.train.x.max() == pytest.approx(1)


def test_splits_depend_on_the_seed_and_only_on_it():
    a, b, c = (prepare(spec(name="digits"), seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.test.y, b.test.y) and np.array_equal(a.test.x, b.test.x)
    assert not np.array_equal(a.test.x, c.test.x)


def test_classes_keeps_and_relabels_and_limit_caps_training():
    bundle = prepare(spec(name="digits", classes=[8, 9], limit=100), seed=0)
    assert len(bundle.train) == 100 and bundle.num_classes == 2
    assert set(np.unique(bundle.train.y)) == {0, 1}
    assert set(np.unique(bundle.test.y)) == {0, 1}
    with pytest.raises(DataError, match="do not occur"):
        prepare(spec(name="iris", classes=[0, 7]), seed=0)


def test_full_batch_is_the_training_set_size():
    bundle = prepare(spec(name="iris", batch_size="full"), seed=0)
    assert bundle.batch_size == len(bundle.train)


def test_csv_and_npz_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    labels = np.where(x[:, 0] > 0, "yes", "no")
    lines = ["a,b,c,label"] + [f"{r[0]},{r[1]},{r[2]},{lab}" for r, lab in zip(x, labels)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    bundle = prepare(spec(name="csv", path=str(tmp_path / "d.csv"), target="label", features=["a", "b"]), seed=0)
    assert bundle.task == "classification" and bundle.num_classes == 2 and bundle.input_shape == (2,)
    with pytest.raises(DataError, match="did you mean `label`"):
        prepare(spec(name="csv", path=str(tmp_path / "d.csv"), target="lable"), seed=0)
    np.savez(tmp_path / "d.npz", x=x.astype(np.float32), y=x[:, 0] * 2.5)
    bundle = prepare(spec(name="npz", path=str(tmp_path / "d.npz")), seed=0)
    assert bundle.task == "regression" and bundle.target_dim == 1


def test_array_loader_slices_a_permutation_and_covers_every_sample_once():
    import torch
    from dltrain.data.loader import ArrayLoader
    x = torch.arange(10).float().unsqueeze(1)
    loader = ArrayLoader(x, torch.arange(10), 4, shuffle=True, generator=torch.Generator().manual_seed(0))
    seen = torch.cat([yb for _, yb in loader])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    assert [len(yb) for _, yb in loader] == [4, 4, 2]
    # a trailing batch of one sample is dropped when shuffling (it breaks batch norm)
    assert len(ArrayLoader(x[:9], torch.arange(9), 4, shuffle=True)) == 2


def test_every_dataset_has_a_description():
    assert all(entry.description for entry in DATASETS.entries())


def write_patients(path, n: int = 40, bad: dict | None = None):
    """A CSV of n rows (age, bmi, y); `bad` maps a data row number (1 = first after the header) to a bmi cell."""
    rng = np.random.default_rng(0)
    lines = ["age,bmi,y"]
    for row in range(1, n + 1):
        age, bmi = rng.uniform(20, 80), rng.uniform(18, 40)
        cell = (bad or {}).get(row, f"{bmi:.2f}")
        lines.append(f"{age:.1f},{cell},{2 * age + bmi:.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def csv_recipe(tmp_path, csv_file, **data):
    return write_recipe(tmp_path / "r.yaml", tiny_recipe(
        data={"name": "csv", "path": str(csv_file), "target": "y", "batch_size": 8, **data}, train={"epochs": 1}))


def test_a_csv_cell_that_is_not_a_number_is_named_by_column_and_row(cli, tmp_path):
    csv_file = write_patients(tmp_path / "p.csv", bad={17: "abc"})
    result = cli("run", csv_recipe(tmp_path, csv_file))
    assert result.code == 2
    assert f"{csv_file}: column `bmi`, row 17 (line 18): 'abc' is not a number" in result.err
    assert "Traceback" not in result.err and run_dirs(tmp_path / "runs") == []


def test_missing_csv_values_are_an_error_naming_the_cell_unless_data_missing_is_drop(cli, tmp_path):
    csv_file = write_patients(tmp_path / "p.csv", n=40, bad={17: "", 30: "NA"})
    refused = cli("run", csv_recipe(tmp_path, csv_file))
    assert refused.code == 2 and run_dirs(tmp_path / "runs") == []
    assert "column `bmi`, row 17 (line 18): '' is a missing value" in refused.err
    assert "data.missing: drop" in refused.err
    dropped = cli("run", csv_recipe(tmp_path, csv_file), "data.missing=drop")
    assert dropped.code == 0, dropped.err
    (run,) = run_dirs(tmp_path / "runs")
    import json
    counts = json.loads((run / "run.json").read_text())["data"]
    assert counts["train"] + counts["val"] + counts["test"] == 38  # the two rows with a gap are left out
