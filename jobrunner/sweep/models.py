"""The sweep job file as frozen pydantic models: Azure ML CLI v2 `type: sweep`
(`sweepJob.schema.json`), every key spelled as Azure ML spells it.

    SweepFile.model_validate(data)   -> the file, validated (unknown keys get a did-you-mean)

Each search-space parameter knows how to turn a number `u` in [0, 1) into a value of its
distribution (`from_unit`): the random and Sobol samplers draw `u`, the parameter maps it, so
both follow Azure ML's definitions exactly. Azure ML's definitions, from its documentation of
sweep jobs ("Hyperparameter tuning a model", search space expressions):

- `choice(values)`: one of the values; `randint(upper)`: an integer in [0, upper)
- `uniform(min_value, max_value)`; `quniform(...,q)`: round(uniform / q) * q
- `loguniform(min_value, max_value)`: exp(uniform(min_value, max_value)) (the bounds are
  exponents); `qloguniform`: round(exp(uniform) / q) * q
- `normal(mu, sigma)`; `qnormal`: round(normal / q) * q; `lognormal`: exp(normal);
  `qlognormal`: round(exp(normal) / q) * q
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Number = int | float


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _quantize(value: float, q: float) -> float:
    return round(value / q) * q


_STANDARD_NORMAL = NormalDist()


def _normal_from_unit(u: float, mu: float, sigma: float) -> float:
    u = min(max(u, 1e-12), 1 - 1e-12)  # the inverse CDF is infinite at 0 and 1
    return mu + sigma * _STANDARD_NORMAL.inv_cdf(u)


class Choice(_Model):
    """One of `values` (numbers, strings, or nested mappings, as Azure ML allows)."""

    type: Literal["choice"]
    values: list[Any] = Field(min_length=1)

    @property
    def discrete(self) -> bool:
        return True

    def from_unit(self, u: float) -> Any:
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]


class Randint(_Model):
    """An integer in [0, upper)."""

    type: Literal["randint"]
    upper: int = Field(ge=1)

    @property
    def discrete(self) -> bool:
        return False

    def from_unit(self, u: float) -> int:
        return min(int(u * self.upper), self.upper - 1)


class _Bounded(_Model):
    min_value: Number
    max_value: Number

    @model_validator(mode="after")
    def _ordered(self) -> _Bounded:
        if self.min_value >= self.max_value:
            raise ValueError(f"min_value ({self.min_value}) must be below max_value ({self.max_value})")
        return self

    @property
    def discrete(self) -> bool:
        return False

    def _uniform(self, u: float) -> float:
        return self.min_value + u * (self.max_value - self.min_value)


class Uniform(_Bounded):
    type: Literal["uniform"]

    def from_unit(self, u: float) -> float:
        return self._uniform(u)


class LogUniform(_Bounded):
    """exp(uniform(min_value, max_value)): the bounds are natural-log exponents."""

    type: Literal["loguniform"]

    def from_unit(self, u: float) -> float:
        return math.exp(self._uniform(u))


class QUniform(_Bounded):
    type: Literal["quniform"]
    q: Number = Field(gt=0)

    def from_unit(self, u: float) -> float:
        return _quantize(self._uniform(u), self.q)


class QLogUniform(_Bounded):
    type: Literal["qloguniform"]
    q: Number = Field(gt=0)

    def from_unit(self, u: float) -> float:
        return _quantize(math.exp(self._uniform(u)), self.q)


class _Gaussian(_Model):
    mu: Number
    sigma: Number = Field(gt=0)

    @property
    def discrete(self) -> bool:
        return False


class Normal(_Gaussian):
    type: Literal["normal"]

    def from_unit(self, u: float) -> float:
        return _normal_from_unit(u, self.mu, self.sigma)


class LogNormal(_Gaussian):
    type: Literal["lognormal"]

    def from_unit(self, u: float) -> float:
        return math.exp(_normal_from_unit(u, self.mu, self.sigma))


class QNormal(_Gaussian):
    type: Literal["qnormal"]
    q: Number = Field(gt=0)

    def from_unit(self, u: float) -> float:
        return _quantize(_normal_from_unit(u, self.mu, self.sigma), self.q)


class QLogNormal(_Gaussian):
    type: Literal["qlognormal"]
    q: Number = Field(gt=0)

    def from_unit(self, u: float) -> float:
        return _quantize(math.exp(_normal_from_unit(u, self.mu, self.sigma)), self.q)


Parameter = Annotated[
    Choice
    | Randint
    | Uniform
    | LogUniform
    | QUniform
    | QLogUniform
    | Normal
    | LogNormal
    | QNormal
    | QLogNormal,
    Field(discriminator="type"),
]


class RandomSampling(_Model):
    """Independent draws, reproducible with `seed`; `rule: sobol` draws a scrambled Sobol
    sequence instead (more even coverage for few trials)."""

    type: Literal["random"]
    seed: int | None = None
    rule: Literal["random", "sobol"] = "random"
    logbase: Number | str | None = Field(None, description="accepted for Azure ML; not used")


class GridSampling(_Model):
    """Every combination of the `choice` parameters, each once."""

    type: Literal["grid"]


class BayesianSampling(_Model):
    """Azure ML's Bayesian sampler is not public: a pool uses optuna's TPE sampler."""

    type: Literal["bayesian"]


Sampling = Annotated[RandomSampling | GridSampling | BayesianSampling, Field(discriminator="type")]


Goal = Literal["minimize", "maximize"]


class Objective(_Model):
    primary_metric: str = Field(min_length=1, description="the MLflow metric each trial logs")
    goal: Goal


class _Policy(_Model):
    evaluation_interval: int | None = Field(
        None, ge=0, description="apply the policy every this many logged values of the metric"
    )
    delay_evaluation: int | None = Field(None, ge=0, description="logged values before the first check")


class BanditPolicy(_Policy):
    type: Literal["bandit"]
    slack_factor: float | None = Field(None, gt=0)
    slack_amount: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_slack(self) -> BanditPolicy:
        if (self.slack_factor is None) == (self.slack_amount is None):
            raise ValueError("a bandit policy takes exactly one of slack_factor and slack_amount")
        return self


class MedianStoppingPolicy(_Policy):
    type: Literal["median_stopping"]


class TruncationSelectionPolicy(_Policy):
    type: Literal["truncation_selection"]
    truncation_percentage: int = Field(ge=1, le=99)


EarlyTermination = Annotated[
    BanditPolicy | MedianStoppingPolicy | TruncationSelectionPolicy, Field(discriminator="type")
]


class SweepLimits(_Model):
    max_total_trials: int = Field(ge=1, description="trials in all")
    max_concurrent_trials: int | None = Field(None, ge=1, description="trials at once (default: all)")
    timeout: int | None = Field(None, ge=1, description="seconds for the whole sweep")
    trial_timeout: int | None = Field(None, ge=1, description="seconds for each trial")


class SweepFile(_Model):
    """A sweep job file. `trial` is a command job (validated as one, with the search space's
    values in place of `${{search_space.<name>}}`, by `jobrunner.sweep.load`)."""

    schema_: str | None = Field(None, alias="$schema")
    type: Literal["sweep"]
    name: str | None = None
    display_name: str | None = None
    experiment_name: str | None = None
    description: str | None = None
    tags: dict[str, Any] | None = None
    trial: dict[str, Any] = Field(description="a command job: command, code, environment, resources, ...")
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    search_space: dict[str, Parameter] = Field(min_length=1)
    sampling_algorithm: Sampling
    objective: Objective
    early_termination: EarlyTermination | None = None
    limits: SweepLimits
    trainstack: dict[str, Any] | None = Field(
        None, description="trainstack's additions, as for a command job"
    )
    # Azure ML keys that mean nothing on a pool: accepted, and noted
    compute: str | dict[str, Any] | None = None
    identity: dict[str, Any] | None = None
    queue_settings: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None
    services: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _sampling_shorthand(cls, data: Any) -> Any:
        """`sampling_algorithm: random` is shorthand for `{type: random}`."""
        if isinstance(data, dict) and isinstance(data.get("sampling_algorithm"), str):
            data = {**data, "sampling_algorithm": {"type": data["sampling_algorithm"].lower()}}
        return data
