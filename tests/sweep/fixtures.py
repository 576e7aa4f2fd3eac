"""Sweep files written here from Azure ML's sweep job schema, so a clone with no corpus still
tests every rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

BASE: dict[str, Any] = {
    "$schema": "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json",
    "type": "sweep",
    "trial": {
        "command": "python train.py --lr ${{search_space.lr}} --opt ${{search_space.opt}} --n ${{inputs.n}}",
        "code": "src",
        "environment": {"image": "python:3.11-slim"},
    },
    "inputs": {"n": 3},
    "sampling_algorithm": "random",
    "search_space": {
        "lr": {"type": "loguniform", "min_value": -6, "max_value": -1},
        "opt": {"type": "choice", "values": ["sgd", "adam"]},
    },
    "objective": {"goal": "minimize", "primary_metric": "loss"},
    "limits": {"max_total_trials": 6, "max_concurrent_trials": 2, "timeout": 3600},
    "experiment_name": "sweep-tests",
}


# One parameter of every expression Azure ML defines.
EVERY_EXPRESSION: dict[str, Any] = {
    "a": {"type": "choice", "values": ["x", "y", "z"]},
    "b": {"type": "randint", "upper": 5},
    "c": {"type": "uniform", "min_value": -1, "max_value": 1},
    "d": {"type": "quniform", "min_value": 0, "max_value": 10, "q": 2},
    "e": {"type": "loguniform", "min_value": -3, "max_value": 0},
    "f": {"type": "qloguniform", "min_value": 0, "max_value": 3, "q": 1},
    "g": {"type": "normal", "mu": 5, "sigma": 1},
    "h": {"type": "qnormal", "mu": 10, "sigma": 2, "q": 1},
    "i": {"type": "lognormal", "mu": 0, "sigma": 0.5},
    "j": {"type": "qlognormal", "mu": 1, "sigma": 0.5, "q": 1},
}


def write_sweep(folder: Path, **changes: Any) -> Path:
    """A sweep file (BASE with `changes` at the top level) and its code folder in `folder`."""
    (folder / "src").mkdir(exist_ok=True)
    (folder / "src" / "train.py").write_text("print('hi')\n")
    data = {**BASE, **changes}
    data = {k: v for k, v in data.items() if v is not None}
    path = folder / "sweep.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
