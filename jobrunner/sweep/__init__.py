"""Hyperparameter sweeps: Azure ML sweep job files (`type: sweep`) on a pool.

- `models`: the sweep file as frozen pydantic models (search space, sampling, objective,
  early termination, limits);
- `load`: reading a file into a `SweepSpec`, and a point of the search space into the trial's
  command job;
- `sampling`: which point each trial runs (random, Sobol, grid; Bayesian through optuna);
- `termination`: Azure ML's early-termination policies as pure functions;
- `driver`: one pass of a sweep's parent run over its trials, resumable from its record;
- `parent`: the parent run in the store (its file, its record, how it concludes);
- `pool_backend`: the trials as ordinary runs of the pool (`TrialBackend`);
- `conductor`: the pool leader's passes over every sweep of its pool;
- `report`: the trials and best trial, as `status`, `submit --wait` and the web view show them.
"""
