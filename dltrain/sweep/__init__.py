"""Hyperparameter sweeps on Optuna: `dltrain sweep RECIPE` (docs/sweeps.md).

spec.py     the recipe's `sweep:` section (typed, strict) and the search space it describes
methods.py  samplers and pruners by name (registries of Optuna's own classes)
study.py    storage (SQLite or PostgreSQL), the study, its trial queue, claiming a trial
trial.py    one trial: the trial's recipes (one per seed), ordinary runs, pruning, the result
driver.py   the sweep: check, queue, run workers (processes), then results.py
results.py  best-trials table, best recipe file, importances, plots

Importing this package is light (no torch, no optuna): recipe.py uses spec.py.
"""
