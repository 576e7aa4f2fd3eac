"""Drawing the trials of a sweep: which point of the search space trial number `index` runs.

    sampler = make_sampler(sweep_file, seed=7)
    point = sampler.draw(index=3, finished=[...])   -> Point | None (None: nothing left)

Every sampler draws *units*, one number in [0, 1) per parameter, and each parameter maps its
unit to a value (`Parameter.from_unit`), so a sweep's record of units and values is all it
needs to resume after its driver is replaced:

- random: `random.Random` seeded with the sweep's seed and the trial's index, so trial `i`
  draws the same point whoever draws it and whenever;
- random with `rule: sobol`: scipy's scrambled Sobol sequence (`scipy.stats.qmc.Sobol`),
  point `i` of the seeded sequence;
- grid: every combination of the `choice` values, in a fixed order, each once; `draw`
  returns None past the last one;
- bayesian: optuna's TPE sampler (Azure ML's own Bayesian sampler is not public), seeded,
  told every finished trial's units and metric before it draws the next point.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jobrunner.sweep.models import (
    BayesianSampling,
    Choice,
    Goal,
    GridSampling,
    Parameter,
    RandomSampling,
    SweepFile,
)


@dataclass(frozen=True)
class Point:
    """One point of the search space: the units drawn and the values they map to."""

    units: dict[str, float]
    params: dict[str, Any]


@dataclass(frozen=True)
class Finished:
    """A finished trial as a sampler that learns from results sees it."""

    units: Mapping[str, float]
    metric: float | None  # None: the trial ended with no value of the primary metric


class Sampler(Protocol):
    def draw(self, index: int, finished: Sequence[Finished]) -> Point | None:
        """The point of trial `index` (0-based), or None when the space is exhausted."""


def make_sampler(sweep: SweepFile, *, seed: int) -> Sampler:
    """The sampler the file's `sampling_algorithm` asks for; `seed` is used where the file
    gives none (the caller keeps it with the sweep, so a resumed sweep draws the same)."""
    algo = sweep.sampling_algorithm
    space = sweep.search_space
    if isinstance(algo, GridSampling):
        return GridSampler(space)
    if isinstance(algo, BayesianSampling):
        return BayesianSampler(space, seed=seed, goal=sweep.objective.goal)
    assert isinstance(algo, RandomSampling)
    chosen = seed if algo.seed is None else algo.seed
    if algo.rule == "sobol":
        return SobolSampler(space, seed=chosen)
    return RandomSampler(space, seed=chosen)


def _point(space: Mapping[str, Parameter], units: Mapping[str, float]) -> Point:
    return Point(dict(units), {name: space[name].from_unit(units[name]) for name in space})


class RandomSampler:
    """Independent uniform units; trial `i`'s point depends only on (seed, i)."""

    def __init__(self, space: Mapping[str, Parameter], *, seed: int) -> None:
        self.space = space
        self.seed = seed

    def draw(self, index: int, finished: Sequence[Finished]) -> Point | None:
        rng = random.Random(f"{self.seed}:{index}")
        return _point(self.space, {name: rng.random() for name in self.space})


class SobolSampler:
    """Point `i` of a scrambled Sobol sequence in as many dimensions as parameters."""

    def __init__(self, space: Mapping[str, Parameter], *, seed: int) -> None:
        self.space = space
        self.seed = seed

    def draw(self, index: int, finished: Sequence[Finished]) -> Point | None:
        from scipy.stats import qmc  # type: ignore[import-untyped]  # scipy ships no stubs

        engine = qmc.Sobol(d=len(self.space), scramble=True, seed=self.seed)
        if index:  # fast_forward(0) is refused
            engine.fast_forward(index)
        row = engine.random(1)[0]
        return _point(self.space, {name: float(u) for name, u in zip(self.space, row, strict=True)})


class GridSampler:
    """Every combination of the choices, each once, in the file's order of parameters."""

    def __init__(self, space: Mapping[str, Parameter]) -> None:
        self.space = space
        sizes = []
        for name, param in space.items():
            if not isinstance(param, Choice):
                raise ValueError(f"grid sampling needs `choice` parameters; `{name}` is {param.type}")
            sizes.append(len(param.values))
        self.size = math.prod(sizes)
        self._sizes = sizes

    def draw(self, index: int, finished: Sequence[Finished]) -> Point | None:
        if index >= self.size:
            return None
        combo = next(itertools.islice(itertools.product(*(range(n) for n in self._sizes)), index, None))
        units = {name: (i + 0.5) / n for name, i, n in zip(self.space, combo, self._sizes, strict=True)}
        return _point(self.space, units)


class BayesianSampler:
    """optuna's TPE over the units (a choice as a categorical of its indices), seeded per
    draw, told every finished trial first; trials that ended with no metric are told as
    failed, so TPE does not draw near them as if they had been good."""

    def __init__(self, space: Mapping[str, Parameter], *, seed: int, goal: Goal) -> None:
        self.space = space
        self.seed = seed
        self.goal = goal

    def _distributions(self) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        out: dict[str, Any] = {}
        for name, param in self.space.items():
            if isinstance(param, Choice):
                out[name] = CategoricalDistribution(list(range(len(param.values))))
            else:
                out[name] = FloatDistribution(0.0, 1.0)
        return out

    def _internal(self, name: str, unit: float) -> float | int:
        param = self.space[name]
        if isinstance(param, Choice):
            return min(int(unit * len(param.values)), len(param.values) - 1)
        return min(max(unit, 0.0), 1.0)

    def draw(self, index: int, finished: Sequence[Finished]) -> Point | None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        distributions = self._distributions()
        sampler = optuna.samplers.TPESampler(seed=self.seed * 100_003 + index)
        study = optuna.create_study(direction=self.goal, sampler=sampler)
        for done in finished:
            params = {name: self._internal(name, done.units[name]) for name in self.space}
            if done.metric is None or not math.isfinite(done.metric):
                state, values = optuna.trial.TrialState.FAIL, None
            else:
                state, values = optuna.trial.TrialState.COMPLETE, [done.metric]
            study.add_trial(
                optuna.trial.create_trial(
                    params=params, distributions=distributions, values=values, state=state
                )
            )
        trial = study.ask(distributions)
        units: dict[str, float] = {}
        for name, param in self.space.items():
            value = trial.params[name]
            units[name] = (value + 0.5) / len(param.values) if isinstance(param, Choice) else float(value)
        return _point(self.space, units)
