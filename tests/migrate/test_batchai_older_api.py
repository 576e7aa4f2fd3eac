"""Batch AI files of both API versions convert: the 2018-03-01 (and 2017-09-01-preview) keys
that 2018-05-01 dropped or renamed are mapped or listed as older-API keys, never refused, and
the converted job runs in `jobrunner submit --dry-run`. Fixtures: `fixtures/<version>/`, the
same job, cluster and file server written for each API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from jobrunner.cli.main import app as jobrunner_app
from jobrunner.errors import ConfigError
from trainstack.batchai.convert import migrate
from trainstack.batchai.fates import Fate
from trainstack.batchai.render import uncovered
from trainstack.batchai.schema import load
from trainstack.cli import app

FIXTURES = Path(__file__).parent / "fixtures"
VERSIONS = ("2018-03-01", "2018-05-01")
OLDER_KEYS = {
    "job": {
        "location": Fate.APPROXIMATED,
        "tags": Fate.APPROXIMATED,
        "properties.experimentName": Fate.MAPPED,
        "properties.toolType": Fate.MAPPED,
        "properties.priority": Fate.APPROXIMATED,
        "properties.outputDirectories[0].type": Fate.MAPPED,
        "properties.outputDirectories[0].createNew": Fate.MAPPED,
        "properties.outputDirectories[1].createNew": Fate.APPROXIMATED,
    },
    "cluster": {
        "location": Fate.APPROXIMATED,
        "properties.nodeSetup.setupTask.runElevated": Fate.APPROXIMATED,
        "properties.nodeSetup.mountVolumes.azureFileShares[0].credentialsInfo": Fate.MAPPED,
    },
    "file server": {"location": Fate.APPROXIMATED},
}


def convert(version: str, out: Path) -> CliRunner:
    folder = FIXTURES / version
    result = CliRunner().invoke(
        app,
        ["migrate", "batchai", "--job", str(folder / "job.json"), "--cluster", str(folder / "cluster.json"),
         "--fileserver", str(folder / "fileserver.json"), "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("version", VERSIONS)
def test_job_cluster_and_file_server_convert_and_the_job_runs_in_a_dry_run(
    version: str, tmp_path: Path
) -> None:
    convert(version, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"job.yml", "stack.yaml", "MIGRATION.md"}
    result = CliRunner().invoke(jobrunner_app, ["submit", str(tmp_path / "job.yml"), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    (node,) = json.loads(result.stdout)
    assert node["processes"][0]["argv"][:2] == ["bash", "-c"]
    assert "listing.txt" in node["processes"][0]["argv"][2]


def test_both_versions_give_the_same_job_and_stack(tmp_path: Path) -> None:
    older, current = tmp_path / "older", tmp_path / "current"
    convert("2018-03-01", older)
    convert("2018-05-01", current)
    old_job = yaml.safe_load((older / "job.yml").read_text())
    new_job = yaml.safe_load((current / "job.yml").read_text())
    # The 2018-03-01 job named its experiment; a 2018-05-01 one has it in its resource path.
    assert (old_job.pop("experiment_name"), new_job.pop("experiment_name")) == ("resnet", "batchai-migrated")
    assert old_job == new_job
    assert (older / "stack.yaml").read_text() == (current / "stack.yaml").read_text()


def test_every_older_key_is_listed_with_what_became_of_it() -> None:
    folder = FIXTURES / "2018-03-01"
    migration = migrate(
        job=folder / "job.json", cluster=folder / "cluster.json", fileserver=folder / "fileserver.json"
    )
    for source in migration.sources:
        assert uncovered(source) == [], source.kind
        fates = {f.path: f for f in source.ledger.fates}
        for path, fate in OLDER_KEYS[source.kind].items():
            assert fates[path].fate == fate, path
            assert "older-API key" in fates[path].note, path
    report = migration.files["MIGRATION.md"]
    assert "`properties.priority` | approximated | properties.schedulingPriority = high" in report
    assert (
        "credentialsInfo` | mapped | properties.nodeSetup.mountVolumes.azureFileShares[0].credentials"
        in report
    )
    schema = {f.path: f.note for f in migration.sources[0].ledger.fates}["$schema"]
    assert schema.endswith("2018-03-01; it was read as 2018-05-01, its older-API keys mapped as listed")


def test_the_older_keys_become_their_current_values() -> None:
    folder = FIXTURES / "2018-03-01"
    _, job = load(folder / "job.json")
    assert job.properties.scheduling_priority == "high"  # type: ignore[union-attr]
    _, cluster = load(folder / "cluster.json")
    (share,) = cluster.properties.node_setup.mount_volumes.azure_file_shares  # type: ignore[union-attr]
    assert share.credentials is not None and share.credentials.account_key == "<AZURE_BATCHAI_STORAGE_KEY>"


def test_a_shown_older_cluster_with_nulls_and_service_fields_converts(tmp_path: Path) -> None:
    migration = migrate(cluster=FIXTURES / "2018-03-01" / "cluster-shown.json")
    (source,) = migration.sources
    assert uncovered(source) == []
    fates = {f.path: f for f in source.ledger.fates}
    for shown in (
        "id",
        "properties.provisioningState",
        "properties.nodeStateCounts",
        "properties.currentNodeCount",
    ):
        assert "reported by the service" in fates[shown].note or "set by the service" in fates[shown].note
    assert "null" in fates["properties.nodeSetup.setupTask"].note
    config = yaml.safe_load(migration.files["stack.yaml"])["config"]
    (pool,) = config["trainstack:pools"]
    assert (pool["minNodes"], pool["maxNodes"], pool["datastores"]) == (2, 2, ["afs"])


def test_a_typo_still_gets_did_you_mean_beside_older_keys(tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "2018-03-01" / "job.json").read_text())
    data["properties"]["nodeCont"] = data["properties"].pop("nodeCount")
    path = tmp_path / "job.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as caught:
        load(path, "job")
    (problem,) = caught.value.problems
    assert problem.field == "properties.nodeCont" and problem.fix == "did you mean `nodeCount`?"


def test_a_null_in_a_current_file_is_still_an_error(tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "2018-05-01" / "job.json").read_text())
    data["properties"]["nodeCount"] = None
    path = tmp_path / "job.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="properties.nodeCount"):
        load(path, "job")


def test_the_report_says_which_root_a_guessed_mount_was_under(tmp_path: Path) -> None:
    job = {
        "properties": {
            "nodeCount": 1,
            "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/logs",
            "inputDirectories": [
                {"id": "OWN", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/own/data"},
                {"id": "SHARED", "path": "$AZ_BATCHAI_MOUNT_ROOT/shared/data"},
            ],
            "customToolkitSettings": {"commandLine": "ls $AZ_BATCHAI_INPUT_OWN $AZ_BATCHAI_INPUT_SHARED"},
        }
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    (source,) = migrate(job=path).sources
    notes = {f.path: f.note for f in source.ledger.fates}
    own, shared = notes["properties.inputDirectories[0].path"], notes["properties.inputDirectories[1].path"]
    assert (
        "is one of the job's own mounts ($AZ_BATCHAI_JOB_MOUNT_ROOT holds what the job's mountVolumes" in own
    )
    assert "cluster" not in own.split(":")[0]
    assert "was mounted by the cluster (its nodeSetup.mountVolumes, under $AZ_BATCHAI_MOUNT_ROOT)" in shared
