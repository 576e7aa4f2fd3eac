"""Reading a sweep job file into a validated `SweepSpec`, refusing at submit time what a pool
could not run, and turning one point of the search space into the trial's command job.

    sweep = load_sweep("sweep.yml")               -> SweepSpec (raises JobSpecError)
    job = sweep.trial_job({"lr": 0.1, "boost": "dart"})   -> JobSpec of that trial

The trial is a command job: `trial` plus the sweep's `inputs`, `outputs`, `experiment_name`
and `trainstack` keys. It is validated by the command-job loader itself, once at load time
with a stand-in value for every parameter (so a typo in `trial` is reported before any trial
runs, with the field under `trial.`), then once per trial with the drawn values in place of
`${{search_space.<name>}}` and as `AZUREML_SWEEP_<name>` in its environment, as Azure ML does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jobrunner.errors import ConfigError, JobSpecError, Problem
from jobrunner.files import file_json_schema, parse_mapping, read_text, validate_model
from jobrunner.spec.job import JobSpec, parse_job
from jobrunner.sweep.models import BayesianSampling, Choice, GridSampling, QUniform, SweepFile, Uniform

SCHEMA_ID = "https://trainstack.dev/schemas/sweep.schema.json"
_SEARCH_SPACE_REF = re.compile(r"\$\{\{\s*search_space\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Keys of the sweep file that its trials inherit as command-job keys.
_INHERITED = ("inputs", "outputs", "experiment_name", "display_name", "tags", "trainstack")
# Azure ML's Bayesian sampling supports these parameter types only, and no early termination.
_BAYESIAN_TYPES = (Choice, Uniform, QUniform)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: the file's settings and how to make each trial's command job."""

    file: SweepFile
    source: str
    base_dir: Path
    notes: tuple[str, ...] = field(default=())
    check_paths: bool = True  # False where the files are not (the pool's scheduler)

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(self.file.search_space)

    def trial_job(self, params: Mapping[str, Any]) -> JobSpec:
        """The command job of the trial at `params` (one value per search-space name).

        Raises JobSpecError when a value makes the trial invalid (the problems name the
        sweep file and `trial.<field>`)."""
        return _trial_job(self.file, params, self.source, self.base_dir, check_paths=self.check_paths)

    def stand_in_job(self) -> JobSpec:
        """The trial's command job with a stand-in value for every parameter: what each trial
        shares (code, inputs, environment, resources), for the checks made at submit."""
        return self.trial_job(_stand_in(self.file))


def is_sweep_file(data: Mapping[str, Any]) -> bool:
    """Whether a job file's mapping is a sweep (`type: sweep`)."""
    return str(data.get("type", "")).lower() == "sweep"


def load_sweep(path: str | Path, *, check_paths: bool = True) -> SweepSpec:
    """Read and validate the sweep file at `path`.

    Raises JobSpecError with every problem found (file, field, fix): schema errors, unknown
    keys (did-you-mean), `${{search_space.x}}` naming no parameter, a sampler given a
    parameter it cannot draw, and the trial's own problems as a command job.
    """
    p = Path(path)
    text = read_text(p, what="sweep file", error=JobSpecError)
    return parse_sweep(text, source=str(p), base_dir=p.parent, check_paths=check_paths)


def parse_sweep(
    text: str, *, source: str | None = None, base_dir: str | Path = ".", check_paths: bool = True
) -> SweepSpec:
    """Like `load_sweep` for text in hand. Raises JobSpecError, never anything else."""
    src = source or "<sweep>"
    try:
        data = parse_mapping(text, source=src, what="sweep file")
    except ConfigError as exc:
        raise JobSpecError(exc.problems) from None
    sweep = validate_model(SweepFile, data, file=src, error=JobSpecError)
    problems = _sampler_problems(sweep, src) + _reference_problems(sweep, src)
    base = Path(base_dir)
    notes: tuple[str, ...] = ()
    if not problems:
        try:
            trial = _trial_job(sweep, _stand_in(sweep), src, base, check_paths=check_paths)
            notes = trial.notes
        except JobSpecError as exc:
            problems += list(exc.problems)
    if problems:
        raise JobSpecError(problems)
    return SweepSpec(sweep, src, base, notes + _own_notes(sweep), check_paths)


def _stand_in(sweep: SweepFile) -> dict[str, Any]:
    return {name: param.from_unit(0.5) for name, param in sweep.search_space.items()}


def sweep_json_schema() -> dict[str, Any]:
    """The JSON Schema of a sweep file (what `schemas/sweep.schema.json` holds)."""
    title = "trainstack sweep file (Azure ML CLI v2 sweep job)"
    return file_json_schema(SweepFile, schema_id=SCHEMA_ID, title=title)


def _sampler_problems(sweep: SweepFile, source: str) -> list[Problem]:
    problems: list[Problem] = []
    algo = sweep.sampling_algorithm
    for name, param in sweep.search_space.items():
        where = f"search_space.{name}"
        if isinstance(algo, GridSampling) and not isinstance(param, Choice):
            problems.append(
                Problem(
                    source,
                    where,
                    f"grid sampling covers `choice` parameters only, not `{param.type}`",
                    "list the values with `type: choice`, or use `sampling_algorithm: random`",
                )
            )
        if isinstance(algo, BayesianSampling) and not isinstance(param, _BAYESIAN_TYPES):
            problems.append(
                Problem(
                    source,
                    where,
                    f"Bayesian sampling takes `choice`, `uniform` and `quniform` only, not `{param.type}`",
                    "use one of those, or `sampling_algorithm: random`",
                )
            )
    if isinstance(algo, BayesianSampling) and sweep.early_termination is not None:
        problems.append(
            Problem(
                source,
                "early_termination",
                "Bayesian sampling learns from every finished trial, so it takes no early termination",
                "remove `early_termination`, or use random or grid sampling",
            )
        )
    limits = sweep.limits
    if limits.max_concurrent_trials and limits.max_concurrent_trials > limits.max_total_trials:
        problems.append(
            Problem(
                source,
                "limits.max_concurrent_trials",
                f"is {limits.max_concurrent_trials}, more than max_total_trials ({limits.max_total_trials})",
                "lower it to at most max_total_trials",
            )
        )
    return problems


def _reference_problems(sweep: SweepFile, source: str) -> list[Problem]:
    command = sweep.trial.get("command")
    if not isinstance(command, str):
        return []
    problems = []
    for name in sorted(set(_SEARCH_SPACE_REF.findall(command)) - set(sweep.search_space)):
        problems.append(
            Problem(
                source,
                "trial.command",
                f"`${{{{search_space.{name}}}}}` names no parameter of search_space",
                f"add `{name}` to search_space",
            )
        )
    return problems


def _own_notes(sweep: SweepFile) -> tuple[str, ...]:
    notes = []
    if sweep.compute is not None:
        notes.append("`compute` is not used on a pool: its trials run on the pool they are submitted to")
    if isinstance(sweep.sampling_algorithm, BayesianSampling):
        notes.append("Bayesian sampling uses optuna's TPE sampler (Azure ML's own is not public)")
    return tuple(notes)


def render_value(value: Any) -> str:
    """A parameter's value as the trial's command line and environment read it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return yaml.safe_dump(value, default_flow_style=True).strip()


def _trial_job(
    sweep: SweepFile, params: Mapping[str, Any], source: str, base_dir: Path, *, check_paths: bool = True
) -> JobSpec:
    missing = set(sweep.search_space) - set(params)
    if missing:
        raise JobSpecError([Problem(source, "search_space", f"no value for {sorted(missing)}")])
    mapping: dict[str, Any] = dict(sweep.trial)
    for key in _INHERITED:
        value = getattr(sweep, key)
        if value not in (None, {}) and key not in mapping:
            mapping[key] = value
    if isinstance(mapping.get("command"), str):
        mapping["command"] = _SEARCH_SPACE_REF.sub(
            lambda m: render_value(params[m.group(1)]), mapping["command"]
        )
    if sweep.limits.trial_timeout is not None:
        limits = dict(mapping.get("limits") or {})
        own = limits.get("timeout")
        limits["timeout"] = (
            min(own, sweep.limits.trial_timeout) if isinstance(own, int) else sweep.limits.trial_timeout
        )
        mapping["limits"] = limits
    env = dict(mapping.get("environment_variables") or {})
    env.update({f"AZUREML_SWEEP_{name}": render_value(value) for name, value in params.items()})
    mapping["environment_variables"] = env
    try:
        return parse_job(
            yaml.safe_dump(mapping, sort_keys=False),
            source=source,
            base_dir=base_dir,
            check_paths=check_paths,
        )
    except JobSpecError as exc:
        raise JobSpecError([_under_trial(p) for p in exc.problems]) from None


def _under_trial(problem: Problem) -> Problem:
    """A problem of the trial's command job, named where it is in the sweep file."""
    top = problem.field.split(".", 1)[0].split("[", 1)[0]
    if not problem.field or top in _INHERITED:
        return problem
    return Problem(problem.file, f"trial.{problem.field}", problem.message, problem.fix)
