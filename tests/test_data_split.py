"""The splits and the bundled digits, made without scikit-learn, are scikit-learn's own."""

from __future__ import annotations

import numpy as np
import pytest

from dltrain.data.split import split_indices


@pytest.mark.parametrize("seed", [0, 1, 7, 123])
@pytest.mark.parametrize("n, n_take, classes", [(1797, 270, 10), (150, 23, 3), (200, 30, 2), (97, 13, 5),
                                                (1527, 229, 10), (11, 3, 3)])
def test_the_stratified_and_plain_splits_are_scikit_learns(seed, n, n_take, classes):
    from sklearn.model_selection import train_test_split
    y = np.random.default_rng(seed).integers(0, classes, n)
    y[:classes] = np.arange(classes)  # every class present
    y[classes:2 * classes] = np.arange(classes)  # twice
    index = np.arange(n)
    for stratify in (y, None):
        expected_rest, expected_take = train_test_split(index, test_size=n_take, random_state=seed, stratify=stratify)
        rest, take = split_indices(n, n_take, seed, stratify)
        assert np.array_equal(rest, expected_rest) and np.array_equal(take, expected_take)


def test_digits_read_from_the_bundled_file_equal_load_digits():
    from sklearn.datasets import load_digits

    from dltrain.data.tabular import digits
    expected = load_digits()
    arrays = digits(0, as_images=False)
    assert np.array_equal(arrays.x, expected.data.astype(np.float32)) and arrays.x.dtype == np.float32
    assert np.array_equal(arrays.y, expected.target) and arrays.y.dtype == np.int64
    assert arrays.class_names == [str(n) for n in expected.target_names]
