"""Seeded train/held-out splits, the very ones scikit-learn's `train_test_split` makes (its
ShuffleSplit and StratifiedShuffleSplit drawn from `np.random.RandomState(seed)`), without
importing scikit-learn, which imports SciPy: most of a plain run's start-up.
tests/test_data_split.py checks the indices against scikit-learn's for many shapes and seeds."""

from __future__ import annotations

import numpy as np


def split_indices(n: int, n_take: int, seed: int, stratify: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rest, take): indices of the n - n_take samples kept and of the n_take held out."""
    rng = np.random.RandomState(seed)
    if stratify is None:
        permutation = rng.permutation(n)
        return permutation[n_take:], permutation[:n_take]
    return _stratified(stratify, n - n_take, n_take, rng)


def _stratified(y: np.ndarray, n_rest: int, n_take: int, rng: np.random.RandomState):
    classes, y_indices = np.unique(y, return_inverse=True)
    class_counts = np.bincount(y_indices)
    class_indices = np.split(np.argsort(y_indices, kind="mergesort"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_rest, rng)
    t_i = _approximate_mode(class_counts - n_i, n_take, rng)
    rest, take = [], []
    for i in range(len(classes)):
        permuted = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        rest.extend(permuted[:n_i[i]])
        take.extend(permuted[n_i[i]:n_i[i] + t_i[i]])
    return rng.permutation(rest), rng.permutation(take)


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Per class, how many of n_draws to take: the proportional share rounded down, the rest given
    to the largest remainders (ties drawn at random)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)
