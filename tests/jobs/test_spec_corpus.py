"""Every real Azure ML CLI v2 command-job file is judged against what Azure ML's own loader
(`azure.ai.ml.load_job`) says of it: a file it accepts must pass `jobrunner submit --dry-run`
as it is, unless it needs what a pool cannot give (spelled out in POOL_LIMITS below), and then
the refusal names exactly that reason. Parametrized over whatever files are there.

The corpus holds the job files without the folders they name (`code: src`), so each file is
judged in a copy of its folder that has them: empty folders and files at the paths the file
itself names, as a checkout of the file's repository would.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from jobrunner.cli.main import app
from jobrunner.errors import JobSpecError, Problem
from jobrunner.spec.job import JobSpec, load_job
from tests.corpus import AML_CLI_V2 as CORPUS
from tests.corpus import OWN_AML_CLI_V2, corpus_files

# The project's own job files (tests/fixtures) on every clone, the corpus's real ones beside them.
FILES = sorted(OWN_AML_CLI_V2.glob("*.yml")) + corpus_files(CORPUS, "*.yml", "*.yaml")


def _raw(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return {}  # Azure ML's loader refuses it as well: the test skips
    return data if isinstance(data, dict) else {}


def _inputs(data: dict[str, Any]) -> dict[str, Any]:
    inputs = data.get("inputs")
    return {k: v for k, v in inputs.items() if isinstance(v, dict)} if isinstance(inputs, dict) else {}


def _is_asset(path: Any) -> bool:
    if not isinstance(path, str):
        return False
    registered = path.startswith("azureml:") and not path.startswith("azureml://datastores/")
    return registered or path.lower().startswith("/subscriptions/")


def _environment(data: dict[str, Any], where: Path) -> dict[str, Any]:
    env = data.get("environment")
    if isinstance(env, str) and (env.startswith("file:") or env.endswith((".yml", ".yaml"))):
        env = yaml.safe_load((where / env.removeprefix("file:")).read_text())
    return env if isinstance(env, dict) else {}


# What a pool honestly cannot give: (name, does the file ask for it, the problem that says so).
Limit = tuple[str, Callable[[dict[str, Any], Path], bool], Callable[[Problem], bool]]
POOL_LIMITS: tuple[Limit, ...] = (
    (
        "ray distribution",
        lambda d, _: str((d.get("distribution") or {}).get("type", "")).lower() == "ray",
        lambda p: p.field == "distribution.type" and "not `ray`" in p.message,
    ),
    (
        "conda build",
        lambda d, w: "conda_file" in _environment(d, w),
        lambda p: p.field == "environment.conda_file" and "conda" in p.message,
    ),
    (
        "image build",
        lambda d, w: "build" in _environment(d, w),
        lambda p: p.field == "environment.build" and "does not build images" in p.message,
    ),
    (
        "git code",
        lambda d, _: str(d.get("code", "")).startswith("git+"),
        lambda p: p.field == "code" and "is git code" in p.message,
    ),
    (
        "registered data asset",
        lambda d, _: any(_is_asset(v.get("path")) for v in _inputs(d).values()),
        lambda p: (
            p.field.startswith("inputs.") and "a registered Azure ML asset: give a datastore URI" in p.message
        ),
    ),
)


def _local_folder(value: Any) -> bool:
    return isinstance(value, str) and "://" not in value and not value.startswith(("azureml:", "git+"))


def checkout(path: Path, tmp_path: Path) -> Path:
    """A copy of the job file's folder (and its siblings, which files name as `../x`) with the
    local code, build context and input paths the file names."""
    shutil.copytree(path.parent.parent, tmp_path / "repo")
    folder = tmp_path / "repo" / path.parent.name
    data = _raw(path)
    env = data.get("environment")
    build = env.get("build") if isinstance(env, dict) else None
    for local in (data.get("code"), build.get("path") if isinstance(build, dict) else None):
        if _local_folder(local):
            (folder / local).mkdir(parents=True, exist_ok=True)
    for value in _inputs(data).values():
        where = value.get("path")
        if isinstance(where, str) and "://" not in where and not _is_asset(where):
            target = folder / where.removeprefix("file:")
            if value.get("type") == "uri_file":
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
            else:
                target.mkdir(parents=True, exist_ok=True)
    return folder / path.name


def azure_ml_accepts(path: Path) -> bool:
    """Whether azure-ai-ml's own `load_job` takes the file as a command job."""
    azure_ml = pytest.importorskip("azure.ai.ml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            job = azure_ml.load_job(path)
        except Exception:  # noqa: BLE001 - any refusal of Azure ML's loader means "not accepted"
            return False
        finally:
            logging.disable(logging.NOTSET)
    return getattr(job, "type", None) == "command"


@pytest.mark.parametrize("original", FILES, ids=lambda p: p.name)
def test_a_file_azure_ml_accepts_runs_on_a_pool_or_names_the_limit(original: Path, tmp_path: Path) -> None:
    path = checkout(original, tmp_path)
    if not azure_ml_accepts(path):
        pytest.skip("Azure ML's own loader refuses this file")
    data = _raw(path)
    needs = [(name, says) for name, asks, says in POOL_LIMITS if asks(data, path.parent)]
    result = CliRunner().invoke(app, ["submit", str(path), "--dry-run", "--json"])
    if not needs:
        assert result.exit_code == 0, result.output
        spec = load_job(path)
        # What was loaded survives a round trip through JSON (the store keeps spec.json).
        assert JobSpec.model_validate_json(spec.model_dump_json(by_alias=True)) == spec
        return
    assert result.exit_code == 1
    with pytest.raises(JobSpecError) as caught:
        load_job(path)
    problems = caught.value.problems
    for problem in problems:
        assert problem.file == str(path)
        assert any(says(problem) for _, says in needs), f"not a pool limit the file has: {problem}"
    for name, says in needs:
        assert any(says(p) for p in problems), f"the refusal does not name the {name}"


@pytest.mark.parametrize("original", FILES, ids=lambda p: p.name)
def test_a_missing_code_folder_is_refused_in_place(original: Path) -> None:
    code = _raw(original).get("code")
    if not _local_folder(code):
        pytest.skip("the file names no local code folder")
    if (original.parent / code).is_dir():
        pytest.skip("the code folder is there")
    assert not azure_ml_accepts(original)  # Azure ML's loader refuses it too
    with pytest.raises(JobSpecError) as caught:
        load_job(original)
    assert "code" in {p.field for p in caught.value.problems}
