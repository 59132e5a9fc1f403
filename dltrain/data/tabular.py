"""Built-in tabular and 2-D datasets: scikit-learn's bundled sets (offline), generated sets,
and the user's own CSV and NPZ files. Generated sets are drawn from the recipe's seed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from dltrain.core.errors import DataError
from dltrain.core.types import NonNegativeFloat
from dltrain.data.registry import DATASETS, Arrays

register = DATASETS.register
SampleCount = Annotated[int, Field(ge=10)]


def _classification(x, y, names=None) -> Arrays:
    return Arrays(np.asarray(x, np.float32), np.asarray(y, np.int64), "classification",
                  [str(n) for n in names] if names is not None else None)


def _regression(x, y) -> Arrays:
    y = np.asarray(y, np.float32)
    return Arrays(np.asarray(x, np.float32), y.reshape(len(y), -1), "regression")


BUNDLED = [  # scikit-learn ships these inside the package: no download
    ("digits", "load_digits", "8x8 handwritten digits, 1797 samples, 10 classes (scikit-learn, offline)"),
    ("iris", "load_iris", "150 iris flowers, 4 features, 3 species (scikit-learn, offline)"),
    ("wine", "load_wine", "178 wines, 13 chemical features, 3 cultivars (scikit-learn, offline)"),
    ("breast_cancer", "load_breast_cancer", "569 tumours, 30 features, malignant vs benign (scikit-learn, offline)"),
    ("diabetes", "load_diabetes",
     "442 patients, 10 features, disease progression after a year: regression (scikit-learn, offline)"),
]


def _bundled(loader_name: str):
    def load(seed, /) -> Arrays:
        import sklearn.datasets
        d = getattr(sklearn.datasets, loader_name)()
        if loader_name == "load_diabetes":
            return _regression(d.data, d.target)
        return _classification(d.data, d.target, d.target_names)
    return load


for _name, _loader, _description in BUNDLED[1:]:
    register(_name, description=_description)(_bundled(_loader))


def bundled_file(name: str) -> Path:
    """A data file scikit-learn ships (sklearn/datasets/data/NAME), found without importing
    scikit-learn (which imports SciPy: most of a run's start-up)."""
    import importlib.util
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the bundled datasets come with scikit-learn, which is not installed (pip install scikit-learn)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name


def _digits_arrays() -> Arrays:
    """load_digits' data, read as it reads it: digits.csv.gz, 64 pixel columns and the label."""
    import gzip
    with gzip.open(bundled_file("digits.csv.gz"), "rt") as handle:
        data = np.loadtxt(handle, delimiter=",")
    return _classification(data[:, :-1], data[:, -1].astype(int), np.arange(10))


@register("digits", description=BUNDLED[0][2] + "; as 1x8x8 images for an architecture that takes images "
                                                "(as_images: auto), or always (true) or never (false)")
def digits(seed, /, *, as_images: bool | Literal["auto"] = "auto"):
    arrays = _digits_arrays()
    if as_images is True:
        arrays.x = arrays.x.reshape(-1, 1, 8, 8)  # (N, 64) -> (N, C=1, H=8, W=8)
    elif as_images == "auto":
        arrays.image_shape = (1, 8, 8)  # flat, unless the model takes images
    return arrays


@register("moons", description="two interleaving half circles in 2-D (generated)")
def moons(seed, /, *, n_samples: SampleCount = 1000, noise: NonNegativeFloat = 0.1):
    from sklearn.datasets import make_moons
    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return _classification(x, y, ["upper", "lower"])


@register("circles", description="a small circle inside a large one in 2-D (generated)")
def circles(seed, /, *, n_samples: SampleCount = 1000, noise: NonNegativeFloat = 0.05,
            factor: Annotated[float, Field(gt=0, lt=1)] = 0.5):
    from sklearn.datasets import make_circles
    x, y = make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=seed)
    return _classification(x, y, ["outer", "inner"])


@register("spirals", description="interleaved spiral arms in 2-D, one class per arm (generated)")
def spirals(seed, /, *, n_samples: SampleCount = 1000, noise: NonNegativeFloat = 0.2,
            arms: Annotated[int, Field(ge=2, le=10)] = 2, turns: Annotated[float, Field(gt=0)] = 1.5):
    rng = np.random.default_rng(seed)
    per_arm = n_samples // arms
    t = np.sqrt(rng.uniform(0, 1, (arms, per_arm))) * turns * 2 * np.pi  # denser toward the centre
    offsets = np.arange(arms)[:, None] * 2 * np.pi / arms
    radius = t / (turns * 2 * np.pi) * 5
    x = np.stack([radius * np.cos(t + offsets), radius * np.sin(t + offsets)], axis=-1).reshape(-1, 2)
    x += rng.normal(0, noise, x.shape)
    y = np.repeat(np.arange(arms), per_arm)
    return _classification(x, y, [f"arm{i}" for i in range(arms)])


@register("friedman", description="Friedman #1: y = 10 sin(pi x1 x2) + 20 (x3-0.5)^2 + 10 x4 + 5 x5 + noise, 10 features (generated)")
def friedman(seed, /, *, n_samples: SampleCount = 2000, noise: NonNegativeFloat = 1.0,
             n_features: Annotated[int, Field(ge=5)] = 10):
    from sklearn.datasets import make_friedman1
    x, y = make_friedman1(n_samples=n_samples, n_features=n_features, noise=noise, random_state=seed)
    return _regression(x, y)


@register("houses", description="house prices (in 100k) from 7 features, with a nonlinear price law and noise (generated)")
def houses(seed, /, *, n_samples: SampleCount = 2000, noise: NonNegativeFloat = 0.1):
    rng = np.random.default_rng(seed)
    area = rng.gamma(6.0, 18.0, n_samples) + 25  # m^2, right-skewed like real listings
    rooms = np.clip(np.round(area / 25 + rng.normal(0, 0.7, n_samples)), 1, None)
    age = rng.uniform(0, 100, n_samples)
    distance = rng.exponential(8.0, n_samples)  # km to the centre
    floor = rng.integers(0, 10, n_samples).astype(float)
    garden = (rng.uniform(size=n_samples) < 0.35).astype(float)
    quality = rng.integers(1, 6, n_samples).astype(float)
    price = (area * 0.02 * (1 + 0.08 * (quality - 3)) * np.exp(-distance / 25)
             + 0.25 * garden + 0.05 * np.minimum(floor, 5) - 0.004 * age + 0.002 * (age - 50) ** 2 / 25
             + 0.1 * rooms)
    price = price * np.exp(rng.normal(0, noise, n_samples))  # multiplicative noise, as prices have
    x = np.stack([area, rooms, age, distance, floor, garden, quality], axis=1)
    return _regression(x, price)


MISSING = {"", "na", "n/a", "nan", "null", "none"}  # cells read as a missing value (any case, spaces trimmed)


@register("csv", description="your CSV file: path, target column, optional features, task; "
                             "missing: error (default) or drop rows with a missing value")
def csv(seed, /, *, path: str, target: str, features: list[str] | None = None,
        task: Literal["auto", "classification", "regression"] = "auto", delimiter: str = ",",
        missing: Literal["error", "drop"] = "error"):
    import csv as csvmod
    file = Path(path)
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csvmod.DictReader(handle, delimiter=delimiter)
            rows, lines = [], []  # the file line each row ends on (a quoted cell may span lines)
            for row in reader:
                rows.append(row)
                lines.append(reader.line_num)
    except FileNotFoundError:
        raise DataError(f"data.path: CSV file not found: {file}") from None
    if not rows:
        raise DataError(f"data.path: {file} has no data rows")
    columns = list(rows[0].keys())
    wanted = features if features is not None else [c for c in columns if c != target]
    for name in [target, *wanted]:
        if name not in columns:
            from dltrain.core.errors import did_you_mean
            raise DataError(f"data: column `{name}` is not in {file}{did_you_mean(name, columns)} "
                            f"(columns: {', '.join(columns)})")

    def where(i: int, column: str) -> str:
        return f"data: {file}: column `{column}`, row {i + 1} (line {lines[i]})"

    keep = []
    for i, row in enumerate(rows):
        gap = next((c for c in [target, *wanted] if (row[c] or "").strip().lower() in MISSING), None)
        if gap is None:
            keep.append(i)
        elif missing == "error":
            raise DataError(f"{where(i, gap)}: {row[gap]!r} is a missing value; fill it in, or set "
                            "data.missing: drop to leave out rows with missing values")
    if not keep:
        raise DataError(f"data: {file}: every row has a missing value in the columns used")
    x = np.array([[_number(rows[i][c], lambda: where(i, c)) for c in wanted] for i in keep], np.float32)
    raw_target = [rows[i][target].strip() for i in keep]
    return _from_target(x, raw_target, task, f"{file} column `{target}`")


def _number(cell: str, where) -> float:
    try:
        return float(cell)
    except ValueError:
        raise DataError(f"{where()}: {cell!r} is not a number") from None


@register("npz", description="your NumPy .npz file with arrays x and y (task as for csv)")
def npz(seed, /, *, path: str, task: Literal["auto", "classification", "regression"] = "auto"):
    file = Path(path)
    try:
        with np.load(file, allow_pickle=False) as archive:
            if "x" not in archive or "y" not in archive:
                raise DataError(f"data.path: {file} must hold arrays `x` and `y` (it has: {', '.join(archive.files)})")
            x, y = archive["x"], archive["y"]
    except FileNotFoundError:
        raise DataError(f"data.path: NPZ file not found: {file}") from None
    except ValueError as exc:
        raise DataError(f"data.path: cannot read {file} as .npz without pickles: {exc}") from None
    if len(x) != len(y):
        raise DataError(f"data: {file}: x has {len(x)} rows but y has {len(y)}")
    return _from_target(x.astype(np.float32), list(y) if y.ndim == 1 else y, task, f"{file} array y")


def _from_target(x: np.ndarray, raw, task: str, what: str) -> Arrays:
    """Decide classification vs regression ('auto': integer or text labels with <= 50 distinct values)."""
    values = np.asarray(raw)
    numeric = True
    try:
        as_float = values.astype(np.float64)
    except ValueError:
        numeric = False
    if task == "auto":
        integral = numeric and as_float.ndim == 1 and np.all(np.mod(as_float, 1) == 0)
        task = "classification" if (not numeric or integral) and len(np.unique(values)) <= 50 else "regression"
    if task == "regression":
        if not numeric:
            raise DataError(f"data: {what} is not numeric, so it cannot be a regression target")
        return _regression(x, as_float)
    names, labels = np.unique(values if not numeric else as_float, return_inverse=True)
    names = [str(int(n)) if numeric and float(n).is_integer() else str(n) for n in names]
    return _classification(x, labels, names)
