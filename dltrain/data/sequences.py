"""Generated sequence datasets, samples shaped (T, F): the adding problem and sine forecasting."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from dltrain.core.types import NonNegativeFloat
from dltrain.data.registry import DATASETS, Arrays

register = DATASETS.register
SampleCount = Annotated[int, Field(ge=10)]
SeqLen = Annotated[int, Field(ge=2, le=10_000)]


@register("adding", description="the adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values "
                                "of a length-seq_len sequence; regression, samples (seq_len, 2)")
def adding(seed, /, *, n_samples: SampleCount = 2000, seq_len: SeqLen = 50, noise: NonNegativeFloat = 0.0):
    """Feature 0: values U(0, 1); feature 1: markers, one in each half (as in Le et al. 2015).
    Target: the sum of the two marked values (+ N(0, noise^2)). Predicting the mean, 1.0, scores
    MSE 1/6 ~ 0.167: a model that beats it has learned to find the markers."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, (n_samples, seq_len))
    half = seq_len // 2
    first = rng.integers(0, half, n_samples)
    second = rng.integers(half, seq_len, n_samples)
    markers = np.zeros((n_samples, seq_len))
    rows = np.arange(n_samples)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = values[rows, first] + values[rows, second] + rng.normal(0.0, noise, n_samples)
    x = np.stack([values, markers], axis=-1).astype(np.float32)  # (N, T, 2)
    return Arrays(x, target.reshape(-1, 1).astype(np.float32), "regression")


@register("sine", description="forecast the next value of a noisy sine wave from a window of seq_len values; "
                              "target next (one value) or sequence (the next value at every step)")
def sine(seed, /, *, n_samples: SampleCount = 2000, seq_len: SeqLen = 20, noise: NonNegativeFloat = 0.05,
         period_low: Annotated[float, Field(gt=2)] = 8.0, period_high: Annotated[float, Field(gt=2)] = 24.0,
         target: Literal["next", "sequence"] = "next"):
    """Each sample is its own wave: period U(period_low, period_high) steps, random phase and
    amplitude U(0.5, 1.5), plus N(0, noise^2) observation noise. The model must infer the wave
    from the window; the target is the next observation (noise included, so the best possible
    MSE is noise^2). Independent waves per sample: no overlap between train and test windows."""
    rng = np.random.default_rng(seed)
    low, high = sorted((period_low, period_high))
    period = rng.uniform(low, high, (n_samples, 1))
    phase = rng.uniform(0, 2 * np.pi, (n_samples, 1))
    amplitude = rng.uniform(0.5, 1.5, (n_samples, 1))
    steps = np.arange(seq_len + 1)[None, :]
    wave = amplitude * np.sin(2 * np.pi * steps / period + phase) + rng.normal(0.0, noise, (n_samples, seq_len + 1))
    x = wave[:, :-1, None].astype(np.float32)  # (N, T, 1)
    if target == "next":
        y = wave[:, -1:]  # (N, 1)
    else:
        y = wave[:, 1:, None]  # (N, T, 1): x shifted by one step
    return Arrays(x, y.astype(np.float32), "regression")
