"""Which point each trial runs: within the space, reproducible per seed, grid exhaustive once,
Bayesian learning from results."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jobrunner.sweep.models import SweepFile
from jobrunner.sweep.sampling import Finished, make_sampler
from tests.sweep.fixtures import EVERY_EXPRESSION

SPACE = EVERY_EXPRESSION


def sweep_file(space: dict[str, Any], sampling: Any = "random", goal: str = "minimize") -> SweepFile:
    return SweepFile.model_validate(
        {
            "type": "sweep",
            "trial": {"command": "true"},
            "search_space": space,
            "sampling_algorithm": sampling,
            "objective": {"goal": goal, "primary_metric": "loss"},
            "limits": {"max_total_trials": 100},
        }
    )


def check_in_space(params: dict[str, Any]) -> None:
    assert params["a"] in ("x", "y", "z")
    assert params["b"] in range(5)
    assert -1 <= params["c"] <= 1
    assert params["d"] in (0, 2, 4, 6, 8, 10)
    assert math.exp(-3) <= params["e"] <= 1
    assert params["f"] == round(params["f"]) and 1 <= params["f"] <= round(math.exp(3))
    assert math.isfinite(params["g"])
    assert params["h"] == round(params["h"])
    assert params["i"] > 0
    assert params["j"] == round(params["j"]) and params["j"] >= 0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), index=st.integers(0, 10_000))
def test_random_points_lie_in_the_space_and_repeat_per_seed_and_index(seed: int, index: int) -> None:
    sampler = make_sampler(sweep_file(SPACE), seed=seed)
    point = sampler.draw(index, [])
    assert point is not None
    check_in_space(point.params)
    again = make_sampler(sweep_file(SPACE), seed=seed).draw(index, [])
    assert again == point


def test_the_files_seed_wins_over_the_default() -> None:
    file = sweep_file(SPACE, {"type": "random", "seed": 42})
    assert make_sampler(file, seed=1).draw(0, []) == make_sampler(file, seed=2).draw(0, [])
    other = sweep_file(SPACE, {"type": "random", "seed": 43})
    assert make_sampler(other, seed=1).draw(0, []) != make_sampler(file, seed=1).draw(0, [])


def test_random_draws_spread_over_the_choices() -> None:
    sampler = make_sampler(sweep_file(SPACE), seed=3)
    seen = {sampler.draw(i, []).params["a"] for i in range(60)}  # type: ignore[union-attr]
    assert seen == {"x", "y", "z"}


def test_sobol_points_lie_in_the_space_repeat_and_cover_evenly() -> None:
    file = sweep_file(SPACE, {"type": "random", "rule": "sobol", "seed": 5})
    points = [make_sampler(file, seed=0).draw(i, []) for i in range(16)]
    for point in points:
        assert point is not None
        check_in_space(point.params)
    assert points[7] == make_sampler(file, seed=0).draw(7, [])
    # a Sobol sequence puts 8 of 16 points in each half of every dimension
    assert sum(p.units["c"] < 0.5 for p in points if p) == 8


def test_grid_covers_every_combination_once_then_stops() -> None:
    space = {"a": {"type": "choice", "values": [1, 2, 3]}, "b": {"type": "choice", "values": ["u", "v"]}}
    sampler = make_sampler(sweep_file(space, "grid"), seed=0)
    points = [sampler.draw(i, []) for i in range(6)]
    combos = [(p.params["a"], p.params["b"]) for p in points if p]
    assert sorted(combos) == sorted((a, b) for a in (1, 2, 3) for b in ("u", "v"))
    assert sampler.draw(6, []) is None


def test_bayesian_draws_lie_in_the_space_and_move_towards_good_results() -> None:
    space = {
        "x": {"type": "uniform", "min_value": 0, "max_value": 10},
        "k": {"type": "choice", "values": ["good", "bad"]},
    }
    sampler = make_sampler(sweep_file(space, "bayesian"), seed=11)
    finished: list[Finished] = []
    for i in range(40):
        point = sampler.draw(i, finished)
        assert point is not None
        assert 0 <= point.params["x"] <= 10 and point.params["k"] in ("good", "bad")
        loss = (point.params["x"] - 7) ** 2 + (0 if point.params["k"] == "good" else 25)
        finished.append(Finished(point.units, loss))
    late = [f for f in finished[-15:] if f.metric is not None]
    early = [f for f in finished[:10] if f.metric is not None]
    assert sum(f.metric for f in late) / len(late) < sum(f.metric for f in early) / len(early)  # type: ignore[misc]
