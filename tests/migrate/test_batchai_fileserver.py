"""File servers, and the mounts jobs make of them (and of unmanaged file systems), converted
field by field; a cluster mount named by a job converted alone; account keys as secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import SECRETS_FROM_FILE, DatastoreConfig
from jobrunner.plan.dryrun import dry_run
from jobrunner.spec.job import load_job
from tests.corpus import BATCHAI as CORPUS
from tests.corpus import OWN_BATCHAI, needs_corpus
from tests.migrate.test_batchai import real_validator
from trainstack.batchai.convert import migrate
from trainstack.batchai.fates import Fate
from trainstack.batchai.render import uncovered

SUB = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ml"
NFS = {
    "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/nfs.json",
    "properties": {
        "vmSize": "Standard_D14_V2",
        "sshConfiguration": {
            "publicIPsToAllow": ["203.0.113.7"],
            "userAccountSettings": {
                "adminUserName": "demoUser",
                "adminUserSshPublicKey": "ssh-rsa AAAAB3Nza",
            },
        },
        "dataDisks": {
            "diskSizeInGB": 1024,
            "diskCount": 4,
            "storageAccountType": "Premium_LRS",
            "cachingType": "readwrite",
        },
        "subnet": {"id": f"{SUB}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"},
    },
}
MINIMAL_NFS = {
    "properties": {
        "vmSize": "Standard_D2_V2",
        "dataDisks": {"diskSizeInGB": 10, "diskCount": 2, "storageAccountType": "Standard_LRS"},
        "sshConfiguration": {"userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p4ss!"}},
    }
}


def write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def stack_of(migration: Any) -> dict[str, Any]:
    return yaml.safe_load(migration.files["stack.yaml"])["config"]  # type: ignore[no-any-return]


@needs_corpus
@pytest.mark.parametrize("data", [NFS, MINIMAL_NFS], ids=["full", "minimal"])
def test_file_server_files_are_valid_for_microsofts_schema(data: dict[str, Any]) -> None:
    assert list(real_validator("nfs").iter_errors(data)) == []


def test_file_server_becomes_a_file_share_datastore_field_by_field(tmp_path: Path) -> None:
    migration = migrate(fileserver=write(tmp_path, "shared-nfs.json", NFS))
    (source,) = migration.sources
    assert uncovered(source) == []
    (entry,) = stack_of(migration)["trainstack:datastores"]
    assert entry == {"name": "shared_nfs", "kind": "fileshare", "container": "shared-nfs", "auth": "identity"}
    DatastoreConfig.model_validate(entry, context={SECRETS_FROM_FILE: True})
    fate = source.ledger.fate_of
    assert fate("properties.vmSize").fate is Fate.UNSUPPORTED
    for leaf in ("diskSizeInGB", "diskCount"):
        record = fate(f"properties.dataDisks.{leaf}")
        assert record.fate is Fate.APPROXIMATED and "4096 GB" in record.note
    assert "Premium_LRS" in fate("properties.dataDisks.storageAccountType").note
    assert fate("properties.dataDisks.cachingType").fate is Fate.UNSUPPORTED
    for leaf in (
        "userAccountSettings.adminUserName",
        "userAccountSettings.adminUserSshPublicKey",
        "publicIPsToAllow",
    ):
        assert fate(f"properties.sshConfiguration.{leaf}").fate is Fate.UNSUPPORTED
    assert fate("properties.subnet.id").fate is Fate.APPROXIMATED
    assert "private endpoint" in fate("properties.subnet.id").note
    assert "ssh-rsa AAAAB3Nza" not in "".join(migration.files.values())
    assert [p.value for p in source.ledger.placeholders] == ["<FILE_SERVER_HOST>"]
    assert "| `<FILE_SERVER_HOST>` |" in migration.files["MIGRATION.md"]


def test_minimal_file_server_never_copies_its_password(tmp_path: Path) -> None:
    migration = migrate(fileserver=write(tmp_path, "nfs.json", MINIMAL_NFS))
    (source,) = migration.sources
    assert uncovered(source) == []
    assert (
        source.ledger.fate_of("properties.sshConfiguration.userAccountSettings.adminUserPassword").fate
        is Fate.UNSUPPORTED
    )
    assert "p4ss!" not in "".join(migration.files.values())
    assert "Standard_LRS" in source.ledger.fate_of("properties.dataDisks.storageAccountType").note


def job_mounting(volumes: dict[str, Any], command: str) -> dict[str, Any]:
    return {
        "properties": {
            "nodeCount": 1,
            "customToolkitSettings": {"commandLine": command},
            "mountVolumes": volumes,
            "inputDirectories": [{"id": "DATA", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/nfs/images"}],
            "outputDirectories": [
                {"id": "OUT", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/nfs", "pathSuffix": "out"}
            ],
        }
    }


FILE_SERVER_MOUNT = {
    "fileServers": [
        {
            "fileServer": {"id": f"{SUB}/providers/Microsoft.BatchAI/workspaces/ws/fileServers/shared-nfs"},
            "sourceDirectory": "datasets",
            "relativeMountPath": "nfs",
            "mountOptions": "rw,hard",
        }
    ]
}


def test_job_on_a_file_server_and_the_file_server_give_one_datastore(tmp_path: Path) -> None:
    job = write(
        tmp_path,
        "train.json",
        job_mounting(FILE_SERVER_MOUNT, "python $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs/train.py"),
    )
    migration = migrate(job=job, fileserver=write(tmp_path, "nfs.json", NFS), target="pool")
    assert all(uncovered(s) == [] for s in migration.sources)
    (entry,) = stack_of(migration)["trainstack:datastores"]
    assert entry == {"name": "shared_nfs", "kind": "fileshare", "container": "shared-nfs", "auth": "identity"}
    spec_file = tmp_path / "job.yml"
    spec_file.write_text(migration.files["job.yml"])
    spec = load_job(spec_file)
    # The mount's sourceDirectory is the path's prefix inside the datastore.
    assert spec.data_inputs["DATA"].path == "azureml://datastores/shared_nfs/paths/datasets/images"
    assert spec.outputs["OUT"].path == "azureml://datastores/shared_nfs/paths/datasets/${{name}}/out"
    # The job writes under the mount (its output directory), so the mount is an output.
    assert spec.command == "python ${{outputs.nfs}}/train.py"
    assert spec.outputs["nfs"].path == "azureml://datastores/shared_nfs/paths/datasets/"
    fate = migration.sources[0].ledger.fate_of
    base = "properties.mountVolumes.fileServers[0]"
    assert fate(f"{base}.fileServer.id").fate is Fate.APPROXIMATED
    assert fate(f"{base}.sourceDirectory").fate is Fate.MAPPED
    assert fate(f"{base}.relativeMountPath").fate is Fate.MAPPED
    assert fate(f"{base}.mountOptions").fate is Fate.UNSUPPORTED


UNMANAGED = {
    "unmanagedFileSystems": [{"mountCommand": "mount -t nfs 10.0.0.4:/export", "relativeMountPath": "nfs"}]
}


def test_unmanaged_file_system_runs_its_mount_command_on_a_pool(tmp_path: Path) -> None:
    job = write(
        tmp_path, "train.json", job_mounting(UNMANAGED, "python train.py --data $AZ_BATCHAI_INPUT_DATA")
    )
    migration = migrate(job=job)
    assert migration.target == "pool" and "unmanaged" in migration.target_reason
    assert all(uncovered(s) == [] for s in migration.sources)
    spec_file = tmp_path / "job.yml"
    spec_file.write_text(migration.files["job.yml"])
    spec = load_job(spec_file)
    assert spec.trainstack.preparation is not None
    point = '"$AZ_BATCHAI_JOB_MOUNT_ROOT/nfs"'
    assert f"mkdir -p {point} && mount -t nfs 10.0.0.4:/export {point}" in spec.trainstack.preparation.command
    # A path on an unmanaged mount has no datastore: it stays a path on the node, which the
    # shell expands where the preparation mounted it.
    assert spec.inputs["DATA"] == "$AZ_BATCHAI_JOB_MOUNT_ROOT/nfs/images"
    (plan,) = dry_run(spec, 1)
    assert plan.processes[0].argv[-1] == "python train.py --data $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs/images"
    fate = migration.sources[0].ledger.fate_of
    assert fate("properties.mountVolumes.unmanagedFileSystems[0].mountCommand").fate is Fate.APPROXIMATED
    assert "stack.yaml" not in migration.files

    aml = migrate(job=job, target="amlcompute").sources[0].ledger.fate_of
    assert aml("properties.mountVolumes.unmanagedFileSystems[0].mountCommand").fate is Fate.UNSUPPORTED


@pytest.mark.parametrize(
    "path,mount,output_id,output",
    [
        (OWN_BATCHAI / "jobs" / "chainer-cluster-mount.json", "shared", "RESULTS", "Results"),
        pytest.param(
            CORPUS / "jobs" / "cntk-gpu-brainscript.json", "external", "MODEL", "Models", marks=needs_corpus
        ),
    ],
    ids=["own", "corpus"],
)
def test_cluster_mount_of_a_job_converted_alone_gets_a_datastore_to_check(
    path: Path, mount: str, output_id: str, output: str
) -> None:
    migration = migrate(job=path, target="pool")
    (entry,) = stack_of(migration)["trainstack:datastores"]
    assert entry == {"name": mount, "kind": "fileshare", "container": mount, "auth": "identity"}
    DatastoreConfig.model_validate(entry, context={SECRETS_FROM_FILE: True})
    record = migration.sources[0].ledger.fate_of("properties.inputDirectories[0].path")
    assert record.fate is Fate.APPROXIMATED and "guess" in record.note and "--cluster" in record.note
    assert f"datastore `{mount}`" in record.became
    assert "<CLUSTER_STORAGE_ACCOUNT>" in migration.files["MIGRATION.md"]
    job = yaml.safe_load(migration.files["job.yml"])
    assert job["outputs"][output_id]["path"] == f"azureml://datastores/{mount}/paths/${{{{name}}}}/{output}"


def test_account_key_is_a_secret_placeholder_that_validates(tmp_path: Path) -> None:
    keyed = {
        "azureFileShares": [
            {
                "accountName": "oldstore",
                "azureFileUrl": "https://oldstore.file.core.windows.net/nfs",
                "credentials": {"accountKey": "c2VjcmV0LWtleQ=="},
                "relativeMountPath": "nfs",
            }
        ]
    }
    job = write(tmp_path, "train.json", job_mounting(keyed, "python train.py"))
    migration = migrate(job=job, target="pool")
    (entry,) = stack_of(migration)["trainstack:datastores"]
    assert entry["auth"] == "accountKey" and entry["accountKey"] == {"secure": "<STORAGE_ACCOUNT_KEY>"}
    DatastoreConfig.model_validate(entry, context={SECRETS_FROM_FILE: True})
    assert "c2VjcmV0LWtleQ==" not in "".join(migration.files.values())
    assert "| `<STORAGE_ACCOUNT_KEY>` |" in migration.files["MIGRATION.md"]
