"""The job files a stack's experiments declare, checked against the stack: each file must
load (`jobrunner.spec.job.load_job`) and name only datastores the workspace will have."""

from __future__ import annotations

from pathlib import Path

from components.config import StackConfig
from jobrunner.errors import JobSpecError, Problem, did_you_mean
from jobrunner.spec.job import JobSpec, load_job


def run_job_path(job: str, project_dir: Path) -> Path:
    """A run's `job` is relative to the project root (where Pulumi.yaml is)."""
    path = Path(job)
    return path if path.is_absolute() else project_dir / path


def job_datastores(spec: JobSpec) -> list[tuple[str, str]]:
    """(field path in the job file, datastore name) for every input and output on a datastore."""
    out: list[tuple[str, str]] = []
    for name, data_input in spec.data_inputs.items():
        location = data_input.location
        if location.kind == "datastore" and location.store:
            out.append((f"inputs.{name}.path", location.store))
    for name, data_output in spec.outputs.items():
        if data_output.path:
            from jobrunner.spec.uri import parse_data_uri

            store = parse_data_uri(data_output.path).store
            if store:
                out.append((f"outputs.{name}.path", store))
    return out


def job_problems(config: StackConfig, *, stack_file: Path, project_dir: Path) -> list[Problem]:
    """Every problem with the job files of `config`'s runs: missing, invalid, or naming a
    datastore that is neither declared nor built in. Never raises."""
    problems: list[Problem] = []
    known = config.datastore_names()
    for i, experiment in enumerate(config.experiments):
        for j, run in enumerate(experiment.runs):
            field = f"config.trainstack:experiments[{i}].runs[{j}].job"
            path = run_job_path(run.job, project_dir)
            if not path.is_file():
                problems.append(
                    Problem(
                        str(stack_file),
                        field,
                        f"job file {run.job!r} not found",
                        "give a path from the project root",
                    )
                )
                continue
            try:
                spec = load_job(path)
            except JobSpecError as exc:
                problems.extend(exc.problems)
                continue
            for job_field, store in job_datastores(spec):
                if store not in known:
                    guess = did_you_mean(store, known)
                    fix = f"did you mean `{guess}`?" if guess else "declare it under trainstack:datastores"
                    problems.append(
                        Problem(str(path), job_field, f"no datastore named {store!r} in this stack", fix)
                    )
    return problems
