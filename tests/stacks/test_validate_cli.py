"""`trainstack validate` and `trainstack schemas` on good and broken stack files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainstack.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's program and stacks, to break one file at a time."""
    shutil.copy(ROOT / "__main__.py", tmp_path / "__main__.py")
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks")
    return tmp_path


def edit(project: Path, stack: str, old: str, new: str) -> None:
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def validate(project: Path, stack: str = "dev") -> tuple[int, list[dict[str, str]]]:
    result = CliRunner().invoke(app, ["validate", "--stack", stack, "--project-dir", str(project), "--json"])
    report = json.loads(result.output)["stacks"][0]
    return result.exit_code, report["problems"]


def test_committed_stacks_are_valid() -> None:
    result = CliRunner().invoke(app, ["validate", "--project-dir", str(ROOT)])
    assert result.exit_code == 0, result.output
    assert "stack dev is valid" in result.output and "stack prod is valid" in result.output


def test_a_mistyped_key_names_the_field_and_the_fix(project: Path) -> None:
    edit(project, "dev", "maxNodes: 4", "maxNode: 4")
    code, problems = validate(project)
    assert code == 1
    typo = [p for p in problems if p["field"] == "config.trainstack:clusters[0].maxNode"]
    assert typo and typo[0]["fix"] == "did you mean `maxNodes`?"
    assert typo[0]["file"].endswith("stacks/Pulumi.dev.yaml")
    result = CliRunner().invoke(app, ["validate", "--stack", "dev", "--project-dir", str(project)])
    assert result.exit_code == 1 and "maxNodes" in result.output


def test_a_retired_gpu_size_is_refused_with_its_successor(project: Path) -> None:
    edit(project, "dev", "vmSize: Standard_NC24ads_A100_v4", "vmSize: Standard_NC6s_v3")
    code, problems = validate(project)
    assert code == 1
    assert problems == [
        {
            "file": str(project / "stacks" / "Pulumi.dev.yaml"),
            "field": "config.trainstack:clusters[0].vmSize",
            "message": "Standard_NC6s_v3 was retired on 2025-09-30",
            "fix": "use Standard_NC24ads_A100_v4",
        }
    ]


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ("minNodes: 0", "minNodes: 9", "config.trainstack:clusters[0]", "larger than maxNodes"),
        (
            "vmSize: Standard_NC24ads_A100_v4",
            "vmSize: Standard_NC24ads_A100",
            "config.trainstack:clusters[0].vmSize",
            "did you mean `Standard_NC24ads_A100_v4`",
        ),
        (
            "vmSize: Standard_NC24ads_A100_v4",
            "vmSize: Standard_NC6s_v3",
            "config.trainstack:clusters[0].vmSize",
            "retired",
        ),
        ("maxNodes: 4", "maxNodes: four", "config.trainstack:clusters[0].maxNodes", "integer"),
        ("name: a100-spot", "name: a100-spot-cluster-east", "config.trainstack:clusters[0].name", "2-16"),
        (
            "cluster: a100-spot",
            "cluster: a100-sopt",
            "config.trainstack:experiments[0].runs[0].cluster",
            "did you mean `a100-spot`",
        ),
        (
            "trainstack:environment: dev",
            "trainstack:environment: staging",
            "config.trainstack:environment",
            "staging",
        ),
        (
            "trainstack:clusters:",
            "trainstack:cluster:",
            "config.trainstack:cluster",
            "did you mean `trainstack:clusters`",
        ),
        (
            "job: stacks/jobs/mnist-ddp.yml",
            "job: stacks/jobs/missing.yml",
            "config.trainstack:experiments[0].runs[0].job",
            "not found",
        ),
        (
            "      auth: identity\n    - name: shared_files",
            "      auth: accountKey\n    - name: shared_files",
            "config.trainstack:datastores[0]",
            "needs accountKey",
        ),
    ],
)
def test_broken_stack_files_are_refused(project: Path, old: str, new: str, field: str, words: str) -> None:
    edit(project, "dev", old, new)
    code, problems = validate(project)
    assert code == 1
    assert any(p["field"] == field and words in (p["message"] + " " + (p["fix"] or "")) for p in problems), (
        problems
    )


def test_a_plain_text_secret_is_refused(project: Path) -> None:
    path = project / "stacks" / "Pulumi.dev.yaml"
    lines = path.read_text().splitlines()
    i = next(n for n, line in enumerate(lines) if line.strip() == "publicKey:")
    lines[i : i + 2] = ["        publicKey: ssh-ed25519 AAAAC3Nza... user@host"]
    path.write_text("\n".join(lines) + "\n")
    code, problems = validate(project)
    assert code == 1
    (problem,) = problems
    assert problem["field"] == "config.trainstack:clusters[0].ssh.publicKey"
    assert "plain-text secret" in problem["message"]


def test_a_job_naming_an_undeclared_datastore_is_refused(project: Path) -> None:
    job = project / "stacks" / "jobs" / "mnist-ddp.yml"
    job.write_text(job.read_text().replace("datastores/workspaceblobstore/", "datastores/training_dta/"))
    code, problems = validate(project)
    assert code == 1
    (problem,) = problems
    assert problem["file"].endswith("mnist-ddp.yml") and problem["field"] == "inputs.data.path"
    assert problem["fix"] == "did you mean `training_data`?"


def test_an_unknown_stack_lists_the_known_ones(project: Path) -> None:
    code, problems = validate(project, "staging")
    assert code == 1 and {"dev", "prod"} <= set(problems[0]["fix"].removeprefix("stacks here: ").split(", "))


def test_schemas_check_fails_on_drift_and_write_repairs_it(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    (tmp_path / "schemas" / "stack.schema.json").write_text("{}\n")
    runner = CliRunner()
    assert runner.invoke(app, ["schemas", "--check", "--project-dir", str(tmp_path)]).exit_code == 1
    assert runner.invoke(app, ["schemas", "--write", "--project-dir", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["schemas", "--check", "--project-dir", str(tmp_path)]).exit_code == 0


def test_stack_files_point_at_the_schema_and_pass_it() -> None:
    import jsonschema
    import yaml

    schema = json.loads((ROOT / "schemas" / "stack.schema.json").read_text())
    for path in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        text = path.read_text()
        assert text.startswith("# yaml-language-server: $schema=../schemas/stack.schema.json")
        jsonschema.validate(yaml.safe_load(text), schema)
