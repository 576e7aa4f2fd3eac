"""The stack config models on their own: names Azure refuses, node counts, credentials,
secrets, and references between entries."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from components import skus
from components.config import (
    SECRET_PLACEHOLDER,
    SECRETS_FROM_FILE,
    ClusterConfig,
    DatastoreConfig,
    StackConfig,
)

CLUSTER: dict[str, Any] = {"name": "gpu", "vmSize": "Standard_NC24ads_A100_v4", "maxNodes": 2}


def cluster(**changes: Any) -> ClusterConfig:
    return ClusterConfig.model_validate({**CLUSTER, **changes})


def test_defaults_are_safe() -> None:
    c = cluster()
    assert (c.priority, c.min_nodes, c.remote_login) == ("Dedicated", 0, False)
    assert c.sku.gpus == 1


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"minNodes": 3}, "larger than maxNodes"),
        ({"name": "g"}, "2-16"),
        ({"name": "1gpu"}, "starting with a letter"),
        ({"name": "gpu-cluster-west-europe"}, "2-16"),
        ({"vmSize": "Standard_D4s_v5"}, "unknown GPU size"),
        ({"nodePublicIp": False}, "needs subnetId"),
        ({"remoteLogin": True}, "needs ssh"),
        ({"subnetId": "snet-aml"}, "not a subnet id"),
        ({"idleSecondsBeforeScaleDown": 10}, "greater than or equal to 60"),
        ({"priority": "Spot"}, "LowPriority"),
    ],
)
def test_cluster_refusals(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=words):
        cluster(**changes)


def test_gpu_size_is_matched_case_insensitively_and_spelled_as_azure_does() -> None:
    assert cluster(vmSize="STANDARD_nc24ads_a100_v4").vm_size == "Standard_NC24ads_A100_v4"


def test_secrets_must_be_encrypted_in_files_but_arrive_decrypted_in_the_program() -> None:
    plain = {**CLUSTER, "ssh": {"adminUser": "azureuser", "publicKey": "ssh-ed25519 AAAA"}}
    with pytest.raises(pydantic.ValidationError, match="plain-text secret"):
        ClusterConfig.model_validate(plain, context={SECRETS_FROM_FILE: True})
    assert ClusterConfig.model_validate(plain).ssh.public_key == "ssh-ed25519 AAAA"  # type: ignore[union-attr]
    encrypted = {**CLUSTER, "ssh": {"adminUser": "azureuser", "publicKey": {"secure": "v1:abc"}}}
    parsed = ClusterConfig.model_validate(encrypted, context={SECRETS_FROM_FILE: True})
    assert parsed.ssh is not None and parsed.ssh.public_key == SECRET_PLACEHOLDER


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"auth": "accountKey"}, "needs accountKey"),
        ({"auth": "sas"}, "needs sasToken"),
        ({"kind": "adlsgen2", "auth": "sas", "sasToken": {"secure": "x"}}, "not sas"),
        ({"accountKey": {"secure": "x"}}, "auth is not accountKey"),
        ({"container": "Training_Data"}, "3-63 lowercase"),
        ({"name": "workspaceblobstore"}, "already has"),
        ({"name": "training-data"}, "letters, digits and `_`"),
    ],
)
def test_datastore_refusals(data: dict[str, Any], words: str) -> None:
    base = {"name": "training", "kind": "blob", "container": "training-data"}
    with pytest.raises(pydantic.ValidationError, match=words):
        DatastoreConfig.model_validate({**base, **data})


def stack(**changes: Any) -> dict[str, Any]:
    return {
        "environment": "dev",
        "workspace": {"name": "mlw-test", "resourceGroup": "rg-test"},
        "clusters": [CLUSTER],
        "experiments": [{"name": "exp", "environment": {"image": "python:3.11"}, "runs": []}],
        **changes,
    }


def test_references_between_entries_are_checked() -> None:
    data = stack(
        clusters=[CLUSTER, {**CLUSTER, "name": "GPU"}],
        experiments=[
            {
                "name": "exp",
                "environment": {"image": "x"},
                "runs": [{"name": "r", "job": "j.yml", "cluster": "gpv"}],
            }
        ],
    )
    problems = StackConfig.model_validate(data, context={SECRETS_FROM_FILE: True}).reference_problems()
    assert [(p.path, p.fix) for p in problems] == [
        ("clusters[1].name", "rename one"),
        ("experiments[0].runs[0].cluster", "did you mean `gpu`?"),
    ]
    # Inside the program the same problems stop it before anything is declared.
    with pytest.raises(pydantic.ValidationError, match="used twice"):
        StackConfig.model_validate(data)


def test_catalog_is_consistent() -> None:
    names = [s.name for s in skus.all_skus()]
    assert len(names) == len(set(names))
    for sku in skus.all_skus():
        assert sku.gpus >= 1 and sku.gpu_memory_gib > 0 and sku.vcpus > 0 and sku.price_per_hour_usd > 0
        assert sku.price_region and sku.price_date
        if sku.retired:
            successor = skus.find_sku(sku.successor or "")
            assert successor is not None and not successor.is_retired(), sku.name
    assert skus.find_sku("nd96isr_h100_v5") is skus.find_sku("Standard_ND96isr_H100_v5")
    h100 = skus.find_sku("Standard_ND96isr_H100_v5")
    assert h100 is not None and (h100.gpus, h100.infiniband) == (8, True)
    families = {s.family for s in skus.current_skus()}
    assert {"NC A100 v4", "ND A100 v4", "ND H100 v5", "NCads H100 v5", "NC T4 v3"} <= families
    assert all(s.is_retired() for s in skus.all_skus() if s.family in {"NCv3", "NC", "ND"})
