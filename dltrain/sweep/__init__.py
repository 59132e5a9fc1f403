"""Hyperparameter sweeps on Optuna: the engine behind `dltrain sweep RECIPE` (docs/sweeps.md).

study.py    storage (SQLite or PostgreSQL), the study, its trial queue, claiming a trial
trial.py    one trial: the trial's recipes (one per seed), ordinary runs, pruning, the result
driver.py   the sweep: check, queue, run workers (processes), then results.py
results.py  best-trials table, best recipe file, importances, plots

The recipe's `sweep:` section is recipe/sweep.py; samplers and pruners by name are components/search.py.
"""
